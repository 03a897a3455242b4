"""A cluster without metrics-server: no metrics.k8s.io at all. The operator reads each
target's own /metrics (process_resident_memory_bytes) instead, and still captures before the
kernel's OOM kill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oomforensics.archive.store import Archive
from oomforensics.triggers import reason_threshold
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

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(420)]


@pytest.fixture
def without_metrics_server(front: ClusterFront) -> Iterator[ClusterFront]:
    front.metrics_server = False
    try:
        yield front
    finally:
        front.metrics_server = True


async def test_without_pod_metrics_the_targets_own_metrics_page_drives_the_triggers(
    without_metrics_server: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    front = without_metrics_server
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    url = operator_environment(monkeypatch, front, s3, "e2e-nometrics", tmp_path / "spool")
    first_call = len(front.calls)
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        assert (await http.get("/apis/metrics.k8s.io/v1beta1")).status_code == 404
        await apply_crd(http)
        pod = leaky_pod("nometrics", "mapcache", labels={"app": "nometrics"}, memory_limit="128Mi")
        assert (await http.post(PODS, json=pod)).status_code == 201
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "nometrics", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "nometrics"}},
                "sampling": {"interval": "1s"},
                "triggers": {"cooldown": "5s"},
            },
        }
        assert (await http.post(MI, json=investigation)).status_code == 201
        async with running_operator() as operator:

            async def killed() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{MI}/nometrics")).json()
                return body if (body.get("status") or {}).get("oomKills") else None

            body = await poll(killed, 240, "the OOM kill", operator)

    status = body["status"]
    pre = status["oomKills"][0]["preOomSnapshot"]
    assert pre, status["oomKills"][0]
    threshold = reason_threshold("-".join(pre.rstrip("/").rsplit("-", 2)[-2:]))
    assert threshold is not None and threshold >= 80, pre
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Capturing"]["status"] == "True", conditions["Capturing"]
    archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
    keys = await archive.list_snapshots("default", "nometrics", "nometrics", "app", 0)
    assert pre in {k.path() for k in keys}
    manifest = await archive.read_manifest(next(k for k in keys if k.path() == pre))
    assert manifest.working_set_bytes is not None
    assert manifest.working_set_bytes >= 0.8 * 128 * 2**20  # the resident set it triggered on
    # The operator asked for PodMetrics and got 404s; it never asked per pod.
    metrics = [c for c in front.calls[first_call + 1 :] if c.api_group == "metrics.k8s.io"]
    assert metrics and all(c.status == 404 and not c.name for c in metrics)
