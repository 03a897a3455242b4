"""From outside the cluster: captures through the API server's pods/proxy subresource, and a
pod without a memory limit is still watched (the user is told what that turns off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
)
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]


async def test_snapshots_through_the_api_server_proxy_of_a_pod_without_a_limit(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    operator_environment(monkeypatch, front, s3, "e2e-proxy", tmp_path / "spool")
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        pod = leaky_pod("steady", "steady", labels={"app": "steady"}, memory_limit=None)
        assert (await http.post(PODS, json=pod)).status_code == 201
        body = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "steady", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "steady"}},
                "endpoint": {"portName": "http", "access": "apiserver-proxy"},
                "sampling": {"interval": "1s"},
            },
        }
        assert (await http.post(MI, json=body)).status_code == 201
        async with running_operator() as operator:

            async def captured() -> dict[str, Any] | None:
                current: dict[str, Any] = (await http.get(f"{MI}/steady")).json()
                status = current.get("status") or {}
                return current if (status.get("snapshots") or {}).get("count") else None

            current = await poll(captured, 60, "a snapshot through pods/proxy", operator)
    status = current["status"]
    assert status["snapshots"]["lastReason"] == "baseline"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Capturing"]["status"], conditions["Capturing"]["reason"]) == (
        "True",
        "NoMemoryLimit",
    )
    assert conditions["Ready"]["status"] == "True"
    proxied = [c for c in front.calls if c.resource == "pods" and c.subresource == "proxy"]
    assert proxied and all((c.name or "").startswith("steady") for c in proxied)
    assert {c.path.split("/proxy", 1)[1] for c in proxied} >= {"/debug/pprof/heap"}
