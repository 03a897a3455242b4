"""S3 goes down while a pod leaks towards its OOM kill: the operator says so (StorageReady
False, StorageUnavailable), keeps capturing into its spool, and once S3 is back every
snapshot it announced, the pre-OOM one included, is in the archive exactly once.

OOMF_OUTAGE_SECONDS sets the outage (default 20 s; the benchmark-length run is minutes)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    condition,
    events_about,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
)
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

OUTAGE = float(os.environ.get("OOMF_OUTAGE_SECONDS", "20"))
pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300 + 2 * OUTAGE)]
NAME = "outage"


async def test_an_s3_outage_delays_uploads_and_loses_nothing(
    front: ClusterFront,
    kubelet: Kubelet,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    with MotoServer() as s3:
        spool = tmp_path / "spool"
        url = operator_environment(monkeypatch, front, s3, "e2e-outage", spool)
        archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
        async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
            await apply_crd(http)
            rate = 128 * 2**20 / (256 * 1024) / (OUTAGE + 30)  # the kill comes mid-outage
            pod = leaky_pod(NAME, "mapcache", labels={"app": NAME}, rate=round(rate, 2))
            investigation = {
                "apiVersion": "oomforensics.io/v1alpha1",
                "kind": "MemoryInvestigation",
                "metadata": {"name": NAME, "namespace": "default"},
                "spec": {
                    "selector": {"matchLabels": {"app": NAME}},
                    "sampling": {"interval": "1s"},
                    "triggers": {"cooldown": "3s"},
                },
            }
            assert (await http.post(MI, json=investigation)).status_code == 201
            assert (await http.post(PODS, json=pod)).status_code == 201

            async def get() -> dict[str, Any]:
                body: dict[str, Any] = (await http.get(f"{MI}/{NAME}")).json()
                return body

            async def storage_is(state: str) -> dict[str, Any] | None:
                body = await get()
                return body if condition(body, "StorageReady").get("status") == state else None

            async with running_operator() as operator:
                await poll(lambda: storage_is("True"), 60, "the baseline stored", operator)
                before = {k.path() for k in await archive.list_snapshots("default", NAME)}
                stored_before = len(before)
                await asyncio.to_thread(s3.stop)
                down = await poll(
                    lambda: storage_is("False"), 60 + OUTAGE, "StorageReady False", operator
                )

                async def killed() -> dict[str, Any] | None:
                    body = await get()
                    return body if (body.get("status") or {}).get("oomKills") else None

                await poll(killed, 120 + OUTAGE, "the OOM kill during the outage", operator)
                await asyncio.sleep(max(0.0, OUTAGE - 1))  # the outage lasts: the fault itself
                spooled = sum(1 for _ in spool.rglob("manifest.json"))
                await asyncio.to_thread(s3.start)

                async def recovered() -> dict[str, Any] | None:
                    body = await storage_is("True")
                    if body is None or any(spool.rglob("manifest.json")):
                        return None
                    keys = await archive.list_snapshots("default", NAME)
                    count = ((body.get("status") or {}).get("snapshots") or {}).get("count")
                    return body if count == len(keys) else None

                back = time.monotonic()
                body = await poll(recovered, 120, "the spool drained into S3", operator)
                drained = time.monotonic() - back
            announced = {
                e["message"].rsplit(": ", 1)[-1]
                for e in events_about(front, "MemoryInvestigation", NAME)
                if e["reason"] == "SnapshotCaptured"
            }
            keys = await archive.list_snapshots("default", NAME)
            for key in keys:
                await archive.verify(key)
            pre = body["status"]["oomKills"][0]["preOomSnapshot"]
            reasons = {e["reason"] for e in events_about(front, "MemoryInvestigation", NAME)}

    print(
        f"outage of {OUTAGE:g} s: {stored_before} snapshot(s) stored before it, {spooled} "
        f"spooled during it (the pre-OOM one among them: {pre not in before}), "
        f"{len(keys)} in the archive after it, drained {drained:.1f} s after S3 came back"
    )
    assert condition(down, "StorageReady")["reason"] == "StorageUnavailable"
    assert spooled >= 1, "nothing was captured during the outage"
    paths = [k.path() for k in keys]
    assert len(paths) >= stored_before + spooled
    assert announced <= set(paths), sorted(announced - set(paths))
    assert not [p for p, n in Counter(paths).items() if n > 1]
    assert pre in paths
    assert "StorageUnavailable" in reasons
