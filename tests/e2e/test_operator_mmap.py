"""Memory the Go heap does not account for: a service that grows through mmap (cgo, native
buffers) climbs toward its limit while its heap profile stays flat. The operator's status must
say so (non-heap growth), instead of blaming the heap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    dump,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
)
from tests.e2e.test_operator_classic_leak import ARTIFACTS
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(420)]


async def test_growth_outside_the_go_heap_is_called_non_heap_growth(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    operator_environment(monkeypatch, front, s3, "e2e-mmap", tmp_path / "spool")
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        pod = leaky_pod("imaging", "mmap", labels={"app": "imaging"}, memory_limit="160Mi", rate=20)
        assert (await http.post(PODS, json=pod)).status_code == 201
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "imaging", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "imaging"}},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "5s"},
            },
        }
        assert (await http.post(MI, json=investigation)).status_code == 201

        async with running_operator() as operator:

            async def explained() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{MI}/imaging")).json()
                status = body.get("status") or {}
                summary = status.get("summary") or {}
                threshold = "threshold-" in str(summary.get("latest"))
                return body if threshold and status.get("oomKills") else None

            body = await poll(explained, 240, "a threshold snapshot and the OOM kill", operator)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dump(ARTIFACTS / "mmap-status.json", body["status"])
    summary = body["status"]["summary"]
    assert summary["classification"] == "non-heap-growth", summary
    assert "outside the Go runtime" in summary["verdict"]
    assert summary["rssGrowthBytes"] > 10 * max(summary["heapGrowthBytes"], 1)
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert conditions["LeakSuspected"]["reason"] == "NonHeapGrowth"
    assert conditions["OOMObserved"]["status"] == "True"
