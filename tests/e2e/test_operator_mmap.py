"""Memory the Go heap does not account for: a service that grows through mmap (cgo, native
buffers) climbs toward its limit on the real cluster while its heap profile stays flat. The
operator's status must say so (non-heap growth), instead of blaming the heap."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.operator_harness import (
    KubeOperator,
    apply_crd,
    dump,
    poll,
    running_operator,
)
from tests.e2e.test_operator_classic_leak import ARTIFACTS
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]


async def test_growth_outside_the_go_heap_is_called_non_heap_growth(
    kube_operator: KubeOperator,
) -> None:
    kube, namespace = kube_operator.kube, kube_operator.namespace
    image = fixture_image(kube, "leaky")
    mi = kube_operator.mi
    async with kube.async_http() as http:
        await apply_crd(http)
        pod = leaky_pod(
            "imaging",
            namespace,
            image,
            "mmap",
            labels={"app": "imaging"},
            memory_limit="160Mi",
            rate=6,  # slow enough for a series of snapshots 30 s apart before the kill
        )
        created = await http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
        assert created.status_code == 201, created.text
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "imaging", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "imaging"}},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "5s"},
            },
        }
        assert (await http.post(mi, json=investigation)).status_code == 201

        async with running_operator([namespace]) as operator:

            async def explained() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{mi}/imaging")).json()
                status = body.get("status") or {}
                summary = status.get("summary") or {}
                threshold = "threshold-" in str(summary.get("latest"))
                return body if threshold and status.get("oomKills") else None

            body = await poll(explained, 300, "a threshold snapshot and the OOM kill", operator)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dump(ARTIFACTS / "mmap-status.json", body["status"])
    summary = body["status"]["summary"]
    assert summary["classification"] == "non-heap-growth", summary
    assert "outside the Go runtime" in summary["verdict"]
    assert summary["rssGrowthBytes"] > 10 * max(summary["heapGrowthBytes"], 1)
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert conditions["LeakSuspected"]["reason"] == "NonHeapGrowth"
    assert conditions["OOMObserved"]["status"] == "True"
