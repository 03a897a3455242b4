"""What a user sees: kubectl (Debian's 1.36) against the real test cluster applies the CRD
and a MemoryInvestigation, and `kubectl get memoryinvestigations` prints the columns."""

from pathlib import Path

from tests.support.kube import KubeCluster
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


def test_kubectl_get_memoryinvestigations_prints_the_columns(kube: KubeCluster) -> None:
    kubectl = kube.kubectl
    # The server validates the CRD itself (kubectl's client-side schema check is on).
    kubectl("apply", "-f", str(CRD))
    eventually(
        lambda: (
            "memoryinvestigations" in kubectl("api-resources", "--api-group", "oomforensics.io")
        ),
        60,
        "kubectl to discover the new resource",
    )
    kubectl("apply", "-f", "-", stdin=INVESTIGATION)
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
    with kube.http() as http:
        http.patch(
            "/apis/oomforensics.io/v1alpha1/namespaces/default/memoryinvestigations/checkout/status",
            json=status,
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()

    table = kubectl("get", "memoryinvestigations")
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

    wide = kubectl("get", "mi", "-o", "wide")  # the short name, the wide columns
    assert "LEAK" in wide.splitlines()[0] and "LAST SNAPSHOT" in wide.splitlines()[0]
    assert "oomforensics.io" in kubectl("get", "oomforensics", "-o", "name")
