"""S3 goes down while a pod leaks towards its OOM kill: the operator says so (StorageReady
False, StorageUnavailable), keeps capturing into its spool, and once S3 is back every
snapshot it announced, the pre-OOM one included, is in the archive exactly once. On the
real cluster, with the chart's RBAC.

OOMF_OUTAGE_SECONDS sets the outage (default 20 s; the benchmark-length run is minutes)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import (
    apply_crd,
    condition,
    kube_events_about,
    kube_namespace,
    kube_operator_environment,
    poll,
    running_operator,
)
from tests.support.kube import KubeCluster
from tests.support.kube.images import fixture_image
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

OUTAGE = float(os.environ.get("OOMF_OUTAGE_SECONDS", "20"))
pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300 + 2 * OUTAGE)]
NAME = "outage"


@pytest.fixture
def namespace(kube: KubeCluster) -> Iterator[str]:
    with kube_namespace(kube, "outage") as name:
        yield name


async def test_an_s3_outage_delays_uploads_and_loses_nothing(
    kube: KubeCluster,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    image = fixture_image(kube, "leaky")
    kubeconfig, _ = operator_kubeconfig(
        kube, tmp_path / "operator.kubeconfig", watch_namespaces=[namespace]
    )
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    with MotoServer() as s3:
        spool = tmp_path / "spool"
        url = kube_operator_environment(monkeypatch, kubeconfig, s3, "e2e-outage", spool, namespace)
        archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)
        async with kube.async_http() as http:
            await apply_crd(http)
            rate = 128 * 2**20 / (256 * 1024) / (OUTAGE + 30)  # the kill comes mid-outage
            pod = leaky_pod(
                NAME, namespace, image, "mapcache", labels={"app": NAME}, rate=round(rate, 2)
            )
            investigation = {
                "apiVersion": "oomforensics.io/v1alpha1",
                "kind": "MemoryInvestigation",
                "metadata": {"name": NAME, "namespace": namespace},
                "spec": {
                    "selector": {"matchLabels": {"app": NAME}},
                    "sampling": {"interval": "1s"},
                    "triggers": {"cooldown": "3s"},
                },
            }
            assert (await http.post(mi, json=investigation)).status_code == 201
            created = await http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
            assert created.status_code == 201, created.text

            async def get() -> dict[str, Any]:
                body: dict[str, Any] = (await http.get(f"{mi}/{NAME}")).json()
                return body

            async def storage_is(state: str) -> dict[str, Any] | None:
                body = await get()
                return body if condition(body, "StorageReady").get("status") == state else None

            async with running_operator([namespace]) as operator:
                await poll(lambda: storage_is("True"), 60, "the baseline stored", operator)
                before = {k.path() for k in await archive.list_snapshots(namespace, NAME)}
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
                    keys = await archive.list_snapshots(namespace, NAME)
                    count = ((body.get("status") or {}).get("snapshots") or {}).get("count")
                    return body if count == len(keys) else None

                back = time.monotonic()
                body = await poll(recovered, 120, "the spool drained into S3", operator)
                drained = time.monotonic() - back
            events = await kube_events_about(http, namespace, "MemoryInvestigation", NAME)
            announced = {
                e["message"].rsplit(": ", 1)[-1]
                for e in events
                if e["reason"] == "SnapshotCaptured"
            }
            keys = await archive.list_snapshots(namespace, NAME)
            for key in keys:
                await archive.verify(key)
            pre = body["status"]["oomKills"][0]["preOomSnapshot"]
            reasons = {e["reason"] for e in events}

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
