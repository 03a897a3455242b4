"""`oomforensics run` loads the operator without the kubernetes client library."""

import json
import subprocess
import sys

PROBE = """
import json, sys
from oomforensics.cli.run import _without_kubernetes_client
_without_kubernetes_client()
import kopf
from oomforensics.k8s import handlers
client = [m for m, v in sys.modules.items() if v and m.split(".")[0] == "kubernetes"]
print(json.dumps({"loaded": sorted(client), "login": callable(handlers.login)}))
"""


def test_the_operator_process_does_not_import_the_kubernetes_client():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    probe = json.loads(out.stdout)
    assert probe == {"loaded": [], "login": True}


def test_without_the_block_kopf_would_import_it():
    # The probe above means something only while kopf does import it when it can.
    code = "import sys, kopf; print('kubernetes' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "True"
