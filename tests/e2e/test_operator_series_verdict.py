"""The operator judges a run by its series of snapshots, end to end on the real cluster: a
noisy Go service whose bounded cache fills in its first seconds (inside the baseline's
warm-up) runs as a pod on the real kubelet and is watched through several periodic snapshots
and never suspected of a leak, while the same service with a slow steady leak under the same
churn ends with LeakSuspected True, naming the leaking function. The operator runs as the
chart's ServiceAccount with the chart's RBAC: nothing it asks is refused."""

from __future__ import annotations

import asyncio
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
from tests.support.kube.pods import JSON, free_port, host_pod
from tests.support.storefront import MEMPROFILERATE, MODE_ARGS

# Five snapshots 30 s apart of two busy services on a loaded 2-core machine.
pytestmark = [pytest.mark.gotool, pytest.mark.timeout(600)]
SNAPSHOTS = 5  # the baseline and four periodic snapshots, 30 s apart
LEAK_FUNCTION = "main.(*store).rememberOrder"


def storefront_pod(name: str, namespace: str, image: str, mode: str) -> JSON:
    port = free_port()
    args = ["-mode", mode, "-listen", f"127.0.0.1:{port}"]
    args += ["-memprofilerate", str(MEMPROFILERATE), *MODE_ARGS.get(mode, ())]
    return host_pod(
        name,
        namespace,
        image,
        args,
        port=port,
        labels={"app": name},
        memory_limit="1Gi",  # far above either: only periodic snapshots, no threshold
    )


def investigation(name: str, namespace: str) -> JSON:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
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
    kube_operator: KubeOperator,
) -> None:
    kube, namespace, mi = kube_operator.kube, kube_operator.namespace, kube_operator.mi
    image = fixture_image(kube, "storefront")
    seen: dict[str, list[tuple[int, str, str]]] = {"cache": [], "slowleak": []}
    async with kube.async_http() as http:
        await apply_crd(http)
        for name, mode in (("cache", "cachefill"), ("slowleak", "slowleak")):
            pod = storefront_pod(name, namespace, image, mode)
            created = await http.post(kube_operator.pods, json=pod)
            assert created.status_code == 201, created.text
            created = await http.post(mi, json=investigation(name, namespace))
            assert created.status_code == 201, created.text

        async def judged(name: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{mi}/{name}")).json()
            judgement = ((body.get("status") or {}).get("summary") or {}).get("judgement") or {}
            condition = leak_condition(body)
            if condition:
                record = (judgement.get("snapshots", 0), condition["status"], condition["reason"])
                if not seen[name] or seen[name][-1] != record:
                    seen[name].append(record)
            return body if judgement.get("snapshots", 0) >= SNAPSHOTS else None

        async with running_operator([namespace]) as operator:
            cache, leak = await asyncio.gather(
                poll(lambda: judged("cache"), 420, "five snapshots of the cache", operator),
                poll(lambda: judged("slowleak"), 420, "five snapshots of the leak", operator),
            )
        pods = (await http.get(kube_operator.pods)).json()["items"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dump(ARTIFACTS / "series-cache-status.json", {**cache["status"], "seen": seen["cache"]})
    dump(ARTIFACTS / "series-slowleak-status.json", {**leak["status"], "seen": seen["slowleak"]})
    # Both services ran on the real kubelet without a restart: the series is one container run.
    for pod in pods:
        (container,) = pod["status"]["containerStatuses"]
        assert container["restartCount"] == 0, (pod["metadata"]["name"], container)
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
    # As the chart's ServiceAccount, nothing was refused.
    assert not kube_operator.forbidden(), kube_operator.forbidden()
