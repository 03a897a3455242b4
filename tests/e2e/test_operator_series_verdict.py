"""The operator judges a run by its series of snapshots, end to end: a noisy Go service whose
bounded cache fills in its first seconds (inside the baseline's warm-up) is watched through
several periodic snapshots and never suspected of a leak, while the same service with a slow
steady leak under the same churn ends with LeakSuspected True, naming the leaking function."""

from __future__ import annotations

import asyncio
import os
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
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import container, pod
from tests.support.moto import MotoServer
from tests.support.storefront import MEMPROFILERATE, MODE_ARGS, STOREFRONT_BIN

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(480)]
SNAPSHOTS = 5  # the baseline and four periodic snapshots, 30 s apart
LEAK_FUNCTION = "main.(*store).rememberOrder"
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))


def storefront_pod(name: str, mode: str) -> dict[str, Any]:
    args = ["-mode", mode, "-listen", "127.0.0.1:$(PORT)", "-memprofilerate", str(MEMPROFILERATE)]
    args += MODE_ARGS.get(mode, ())
    app = container(
        "app",
        [str(STOREFRONT_BIN)],
        args,
        image="registry.test/oomforensics/storefront:v1",
        memory_limit="1Gi",  # far above either: only periodic snapshots, no threshold
        ports={"http": 0},
    )
    return pod(name, [app], labels={"app": name})


def investigation(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "endpoint": {"portName": "http"},
            "sampling": {"interval": "2s"},
            "snapshots": {"interval": "30s"},
        },
    }


def leak_condition(body: dict[str, Any]) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "LeakSuspected"), {})


async def test_a_filling_cache_is_not_a_leak_and_a_slow_leak_is(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    require_cluster(front)
    if not STOREFRONT_BIN.is_file():
        pytest.skip(f"{STOREFRONT_BIN} is not built (hack/build-go-fixtures.sh)")
    operator_environment(monkeypatch, front, s3, "e2e-series", tmp_path / "spool")
    seen: dict[str, list[tuple[int, str, str]]] = {"cache": [], "slowleak": []}
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        for name, mode in (("cache", "cachefill"), ("slowleak", "slowleak")):
            assert (await http.post(PODS, json=storefront_pod(name, mode))).status_code == 201
            created = await http.post(MI, json=investigation(name))
            assert created.status_code == 201, created.text

        async def judged(name: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{MI}/{name}")).json()
            judgement = ((body.get("status") or {}).get("summary") or {}).get("judgement") or {}
            condition = leak_condition(body)
            if condition:
                record = (judgement.get("snapshots", 0), condition["status"], condition["reason"])
                if not seen[name] or seen[name][-1] != record:
                    seen[name].append(record)
            return body if judgement.get("snapshots", 0) >= SNAPSHOTS else None

        async with running_operator() as operator:
            cache, leak = await asyncio.gather(
                poll(lambda: judged("cache"), 300, "five snapshots of the cache", operator),
                poll(lambda: judged("slowleak"), 300, "five snapshots of the leak", operator),
            )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dump(ARTIFACTS / "series-cache-status.json", {**cache["status"], "seen": seen["cache"]})
    dump(ARTIFACTS / "series-slowleak-status.json", {**leak["status"], "seen": seen["slowleak"]})
    # The cache filled inside the warm-up and stayed at its bound: at no point a leak.
    assert all(status != "True" for _, status, _ in seen["cache"]), seen["cache"]
    condition = leak_condition(cache)
    assert condition["status"] == "False", condition
    assert condition["reason"] in {"GrowthStopped", "NoGrowth"}, condition
    summary = cache["status"]["summary"]
    assert summary["judgement"]["shape"] in {"plateau", "flat"}, summary["judgement"]
    assert not summary["verdict"].startswith("Likely leak"), summary["verdict"]

    # The slow leak, under the same churn: continuing growth, named, at high confidence.
    condition = leak_condition(leak)
    assert condition["status"] == "True", (condition, seen["slowleak"])
    assert condition["reason"] == "HeapGrowth"
    summary = leak["status"]["summary"]
    assert summary["judgement"]["confidence"] == "high"
    assert summary["judgement"]["shape"] == "growing"
    assert summary["suspect"] == LEAK_FUNCTION, summary
    assert LEAK_FUNCTION in summary["verdict"]
    # Before the series could tell, the condition said so instead of guessing.
    early = [reason for n, status, reason in seen["slowleak"] if status == "Unknown" and n < 4]
    assert set(early) <= {"InsufficientEvidence", "WarmingUp", "NotEnoughSnapshots"}
