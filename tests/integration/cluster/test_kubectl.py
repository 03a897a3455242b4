"""What a user sees: kubectl (Debian's 1.36) against the test cluster's front applies the CRD
and a MemoryInvestigation, and `kubectl get memoryinvestigations` prints the columns."""

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.apiserver import KUBECTL_BIN, KUBECTL_HINT, kubectl_present
from tests.support.cluster import ClusterFront
from tests.support.waiting import eventually

ROOT = Path(__file__).parents[3]
CRD = ROOT / "crds" / "memoryinvestigations.oomforensics.io.yaml"
INVESTIGATION = """
apiVersion: oomforensics.io/v1alpha1
kind: MemoryInvestigation
metadata:
  name: checkout
  namespace: default
spec:
  selector:
    matchLabels: {app: checkout}
  endpoint: {port: 6060}
"""


def kubectl(front: ClusterFront, *args: str, stdin: str | None = None) -> str:
    if not kubectl_present():
        pytest.fail(KUBECTL_HINT)  # setup installs it; missing is a broken setup, not a skip
    result = subprocess.run(
        [str(KUBECTL_BIN), "--kubeconfig", str(front.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kubectl_get_memoryinvestigations_prints_the_columns(front, apiserver):
    kubectl(front, "apply", "--validate=false", "-f", str(CRD))
    eventually(
        lambda: (
            "memoryinvestigations"
            in kubectl(front, "api-resources", "--api-group", "oomforensics.io")
        ),
        60,
        "kubectl to discover the new resource",
    )
    kubectl(front, "apply", "--validate=false", "-f", "-", stdin=INVESTIGATION)
    status = {
        "status": {
            "targetCount": 2,
            "oomKillCount": 1,
            "snapshots": {"count": 7, "lastTime": "2026-11-26T03:12:00Z"},
            "summary": {"suspect": "main.fetchReport", "heapGrowth": "+31.13MB"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Watching",
                    "message": "2 targets",
                    "lastTransitionTime": "2026-11-26T03:00:00Z",
                },
                {
                    "type": "LeakSuspected",
                    "status": "True",
                    "reason": "UnclosedResponseBody",
                    "message": "...",
                    "lastTransitionTime": "2026-11-26T03:05:00Z",
                },
            ],
        }
    }
    httpx.patch(
        f"{front.url}/apis/oomforensics.io/v1alpha1/namespaces/default/memoryinvestigations/"
        "checkout/status",
        json=status,
        headers={"Content-Type": "application/merge-patch+json"},
    ).raise_for_status()

    table = kubectl(front, "get", "memoryinvestigations")
    header, row = table.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "TARGETS",
        "SNAPSHOTS",
        "OOMKILLS",
        "SUSPECT",
        "HEAP",
        "GROWTH",
        "READY",
        "AGE",
    ]
    assert row.split()[:7] == ["checkout", "2", "7", "1", "main.fetchReport", "+31.13MB", "True"]

    wide = kubectl(front, "get", "mi", "-o", "wide")  # the short name, the wide columns
    assert "LEAK" in wide.splitlines()[0] and "LAST SNAPSHOT" in wide.splitlines()[0]
    assert "oomforensics.io" in kubectl(front, "get", "oomforensics", "-o", "name")
