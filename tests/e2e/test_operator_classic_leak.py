"""The classic leak, end to end: a Go service that never closes the bodies of 403 responses
runs as a pod with a memory limit; a MemoryInvestigation watches it; the operator captures
snapshots into S3 as memory climbs, the kernel OOM-kills the container, and the custom
resource tells the story: what leaked, the kill, and the last snapshot before it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from oomforensics.archive.store import Archive
from oomforensics.triggers import reason_threshold
from tests.e2e.operator_harness import (
    MI,
    PODS,
    TABLE,
    apply_crd,
    dump,
    events_about,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
    table_text,
)
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(420)]
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))


async def test_an_unclosed_response_body_leak_is_caught_before_and_after_the_oom_kill(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    url = operator_environment(monkeypatch, front, s3, "e2e-classic", tmp_path / "spool")
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        pod = leaky_pod(
            "checkout", "tls403", labels={"app": "checkout"}, memory_limit="160Mi", rate=60
        )
        assert (await http.post(PODS, json=pod)).status_code == 201
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "checkout-oom", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "5s"},
            },
        }
        created = await http.post(MI, json=investigation)
        assert created.status_code == 201, created.text

        async with running_operator() as operator:

            async def killed() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{MI}/checkout-oom")).json()
                kills = (body.get("status") or {}).get("oomKills") or []
                return body if kills else None

            body = await poll(killed, 240, "the operator to record the OOM kill", operator)

            async def summarised() -> dict[str, Any] | None:
                current: dict[str, Any] = (await http.get(f"{MI}/checkout-oom")).json()
                summary = (current.get("status") or {}).get("summary") or {}
                return current if summary.get("leakSuspected") else None

            body = await poll(summarised, 60, "a summary suspecting the leak", operator)
            table = (await http.get(f"{MI}/checkout-oom", headers={"Accept": TABLE})).json()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        dump(ARTIFACTS / "classic-status.json", body["status"])
        (ARTIFACTS / "classic-table.txt").write_text(table_text(table) + "\n")
        dump(ARTIFACTS / "classic-table.json", table)

    status = body["status"]
    # The kill, from the kernel through the kubelet to the status.
    kill = status["oomKills"][0]
    assert kill["pod"] == "checkout" and kill["container"] == "app" and kill["run"] == 0
    assert kill["exitCode"] == 137
    pre = kill["preOomSnapshot"]
    assert pre.startswith(f"default/checkout-oom/checkout/{kill['uid']}/app/run-0/")
    assert float(kill["percentOfLimit"].rstrip("%")) >= 80
    reason = pre.rstrip("/").rsplit("-", 2)
    threshold = reason_threshold("-".join(reason[-2:]))
    assert threshold is None or threshold >= 80, pre
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["OOMObserved"]["status"] == "True"
    assert conditions["StorageReady"]["status"] == "True"
    # What leaked: the unclosed response bodies.
    summary = status["summary"]
    assert summary["classification"] == "unclosed-response-body", summary
    assert summary["leakSuspected"] is True
    assert "response bod" in summary["verdict"].lower()
    assert conditions["LeakSuspected"]["status"] == "True"
    assert conditions["LeakSuspected"]["reason"] == "UnclosedResponseBody"
    # The evidence is in S3, the pre-OOM snapshot complete and verified.
    archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
    keys = await archive.list_snapshots("default", "checkout-oom", "checkout", "app", 0)
    assert len(keys) >= 3
    assert pre in {k.path() for k in keys}
    assert {"baseline", "threshold-80"} <= {k.reason for k in keys}
    pre_key = next(k for k in keys if k.path() == pre)
    await archive.verify(pre_key)
    # Events on the CR and on the pod.
    reasons = {e["reason"] for e in events_about(front, "MemoryInvestigation", "checkout-oom")}
    assert {"SnapshotCaptured", "ThresholdCrossed", "OOMKilled", "LeakSuspected"} <= reasons
    assert "OOMKilled" in {e["reason"] for e in events_about(front, "Pod", "checkout")}
    # Memory came from PodMetrics lists, never a GET per pod.
    metrics = [c for c in front.calls if c.api_group == "metrics.k8s.io"]
    assert metrics and not [c for c in metrics if c.name]
    # What the real API server stores is what was written: nothing pruned.
    async with httpx.AsyncClient(
        base_url=front.upstream.url, verify=front.upstream.ssl_context(), timeout=30
    ) as direct:
        stored = (await direct.get(f"{MI}/checkout-oom")).json()["status"]
    assert stored == status
    # The Table (kubectl get mi) shows the story.
    names = [c["name"] for c in table["columnDefinitions"]]
    cells = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert cells["OOMKills"] >= 1 and cells["Snapshots"] >= 3
    assert cells["Suspect"] and cells["Heap growth"]
