"""Pre-OOM capture with the operator in the loop: run by benchmarks/bench_preoom_operator.py
through pytest (it needs the test cluster's fixtures), never by `make test`.

For each leak speed (target time from 50 % to 100 % of a 128 MiB limit) and repeat, a pod of
the leaky fixture (`-mode mapcache`, the leak begins at start) and a MemoryInvestigation with
the CRD's defaults (15 s sampling) are created; kopf runs the operator until the status lists
the kernel's OOM kill. Each run's OOM entry (pre-OOM snapshot, its % of the limit) is written
as JSON lines to $OOMF_PREOOM_OUT.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
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
from tests.support.cluster import (  # noqa: F401  (registers the fixtures)
    ClusterFront,
    Kubelet,
    apiserver_fixture,
    front_fixture,
    kubelet_fixture,
)
from tests.support.cluster.pods import leaky_pod
from tests.support.moto import MotoServer

LIMIT = 128 * 2**20
CHUNK = 64 * 1024
GROWTH_PER_RETAINED = 1.03  # as in bench_preoom.py: working set per retained byte
SPEEDS = [float(s) for s in os.environ.get("OOMF_PREOOM_SPEEDS", "60,20,5").split(",")]
REPEAT = int(os.environ.get("OOMF_PREOOM_REPEAT", "3"))
OUT = Path(os.environ.get("OOMF_PREOOM_OUT", "/tmp/oomf-preoom-operator.jsonl"))


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def rate(speed: float) -> float:
    return LIMIT / 2 / speed / CHUNK / GROWTH_PER_RETAINED


@pytest.mark.timeout(0)
async def test_pre_oom_snapshots_with_the_operator(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    operator_environment(monkeypatch, front, s3, "bench-preoom", tmp_path / "spool")
    OUT.write_text("")
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        async with running_operator() as operator:
            for index in range(REPEAT):
                for speed in SPEEDS:
                    name = f"leak-{int(speed)}s-{index}"
                    row = await one_run(http, operator, name, speed)
                    with OUT.open("a") as out:
                        out.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


async def one_run(
    http: httpx.AsyncClient, operator: Any, name: str, speed: float
) -> dict[str, Any]:
    pod = leaky_pod(name, "mapcache", labels={"app": name}, memory_limit="128Mi",
                    rate=round(rate(speed), 3), chunk=CHUNK)  # fmt: skip
    investigation = {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}},  # the CRD's defaults
    }
    assert (await http.post(MI, json=investigation)).status_code == 201
    started = time.monotonic()
    assert (await http.post(PODS, json=pod)).status_code == 201

    async def killed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"{MI}/{name}")).json()
        kills = (body.get("status") or {}).get("oomKills") or []
        return kills[0] if kills else None

    try:
        kill = await poll(killed, 4 * speed + 120, f"the OOM kill of {name}", operator)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; {await what_was_seen(http, name)}") from None
    await http.delete(f"{PODS}/{name}")
    await http.delete(f"{MI}/{name}")
    percent = kill.get("percentOfLimit")
    return {
        "speed": speed,
        "name": name,
        "rate": round(rate(speed), 3),
        "startToKillSeconds": round(time.monotonic() - started, 1),
        "preOomSnapshot": kill.get("preOomSnapshot"),
        "percentOfLimit": float(str(percent).rstrip("%")) if percent else None,
    }


async def what_was_seen(http: httpx.AsyncClient, name: str) -> str:
    """When a run times out: the pod's last container state and the operator's last readings
    (targets, conditions, snapshot count), so the report says what happened instead."""
    pod = (await http.get(f"{PODS}/{name}")).json()
    statuses = [
        {k: c.get(k) for k in ("restartCount", "state", "lastState")}
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    status = (await http.get(f"{MI}/{name}")).json().get("status") or {}
    conditions = {
        c.get("type"): f"{c.get('status')} {c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
    }
    seen = {
        "pod": statuses,
        "targets": status.get("targets"),
        "snapshots": status.get("snapshots"),
        "conditions": conditions,
    }
    return "last seen: " + json.dumps(seen, default=str)
