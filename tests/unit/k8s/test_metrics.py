"""The operator's metrics as a platform team reads them: each figure counts what happened in
a pass of the runner (against the fakes of test_step: a real memory:// archive and spool,
real Go heap profiles), the spool and the conditions are read at scrape time, labels never
name a pod, and the page is served over HTTP in Prometheus' text format."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oomforensics.archive.store import Archive, StorageUnavailable
from oomforensics.k8s import metrics
from oomforensics.k8s.api import KubeApi
from oomforensics.k8s.handlers import serve_metrics
from oomforensics.k8s.settings import InvalidSettings, OperatorSettings
from oomforensics.k8s.status import Condition
from tests.unit.k8s.test_step import HEAP, UID_A, MiB, World, body, pod, runner_for

NS, MI = "shop", "db"  # the namespace and investigation of test_step's world


def value(name: str, **labels: str) -> float:
    """A sample's value now (0 when the series does not exist)."""
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def captures(reason: str, outcome: str) -> float:
    return value(
        "oomforensics_captures_total",
        namespace=NS,
        investigation=MI,
        reason=reason,
        outcome=outcome,
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    if not HEAP.is_file():
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    metrics.forget_investigation(NS, MI)  # counters are process-wide: start this one at zero
    yield World(tmp_path)
    metrics.forget_investigation(NS, MI)
    metrics.watch_spools(dict)


class DownArchive(Archive):
    """memory://, but every snapshot write finds the store unavailable."""

    def __init__(self) -> None:
        super().__init__(Archive.from_url("memory://")._store, url="memory://down")

    async def put_snapshot(self, key: Any, files: Any, manifest: Any) -> str:
        raise StorageUnavailable("write: storage unavailable: connection refused")


async def test_a_stored_baseline_counts_once_with_its_bytes_and_latencies(world: World) -> None:
    # the histograms have no investigation label (their buckets would multiply): deltas
    durable = {"namespace": NS, "reason": "baseline"}
    fetched = value("oomforensics_capture_duration_seconds_count", namespace=NS)
    became_durable = value("oomforensics_trigger_to_durable_seconds_count", **durable)
    await runner_for(world).step(body(), [pod()])
    assert captures("baseline", "stored") == 1
    assert captures("baseline", "spooled") == 0
    assert value(
        "oomforensics_snapshot_bytes_total", namespace=NS, investigation=MI, outcome="stored"
    ) == len(HEAP.read_bytes())
    assert value("oomforensics_capture_duration_seconds_count", namespace=NS) == fetched + 1
    assert value("oomforensics_trigger_to_durable_seconds_count", **durable) == became_durable + 1
    assert value("oomforensics_trigger_to_durable_seconds_sum", **durable) > 0
    # a second pass at the same working set: no trigger, nothing counted
    await runner_for(world).step({**body(), "status": world.status}, [pod()])
    assert captures("baseline", "stored") == 1


async def test_a_threshold_capture_counts_under_its_own_reason(world: World) -> None:
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    world.working_set = 85 * MiB  # past 80 % of the 100 Mi limit
    await runner.step(body(), [pod()])
    assert captures("threshold-80", "stored") == 1
    assert captures("baseline", "stored") == 1


async def test_a_failing_capture_counts_as_failed_not_as_a_snapshot(world: World) -> None:
    world.capture_fails = True
    durable = {"namespace": NS, "reason": "baseline"}
    fetched = value("oomforensics_capture_duration_seconds_count", namespace=NS)
    became_durable = value("oomforensics_trigger_to_durable_seconds_count", **durable)
    await runner_for(world).step(body(), [pod()])
    assert captures("baseline", "capture_failed") == 1
    assert captures("baseline", "stored") == 0
    assert value("oomforensics_capture_duration_seconds_count", namespace=NS) == fetched + 1
    assert value("oomforensics_trigger_to_durable_seconds_count", **durable) == became_durable
    assert (
        value("oomforensics_snapshot_bytes_total", namespace=NS, investigation=MI, outcome="stored")
        == 0
    )


async def test_a_store_that_does_not_answer_spools_and_the_spool_is_read_at_scrape_time(
    world: World,
) -> None:
    world.archive_ = DownArchive()
    await runner_for(world).step(body(), [pod()])
    assert captures("baseline", "spooled") == 1
    errors = {"namespace": NS, "investigation": MI}
    assert value("oomforensics_archive_errors_total", **errors, error="store_unavailable") == 1
    assert value("oomforensics_archive_errors_total", **errors, error="write_failed") == 0
    spool = world.spool(world.archive_)
    metrics.watch_spools(lambda: {world.archive_.url: spool})
    where = {"archive": "memory://down"}
    assert value("oomforensics_spool_snapshots", **where) == 1
    assert value("oomforensics_spool_bytes", **where) == spool.size_bytes > len(HEAP.read_bytes())
    assert value("oomforensics_spool_capacity_bytes", **where) == 64 * MiB
    # the store answers again: the next pass drains the spool, and the gauges follow
    world.archive_ = Archive(world.archive_._store, url="memory://down")
    await runner_for(world).step({**body(), "status": world.status}, [pod()])
    assert value("oomforensics_spool_snapshots", **where) == 0
    assert value("oomforensics_spool_bytes", **where) == 0


async def test_a_snapshot_neither_store_nor_spool_keeps_is_a_lost_write(world: World) -> None:
    class Full(World):
        def spool(self, archive: Archive) -> Any:
            spool = super().spool(archive)

            async def refuse(*_: Any) -> str:
                raise OSError(28, "No space left on device")

            spool.submit = refuse  # type: ignore[method-assign]
            return spool

    full = Full(world.tmp)
    await runner_for(full).step(body(), [pod()])
    assert captures("baseline", "storage_failed") == 1
    errors = {"namespace": NS, "investigation": MI, "error": "write_failed"}
    assert value("oomforensics_archive_errors_total", **errors) == 1


async def test_an_oom_kill_counts_once_with_evidence(world: World) -> None:
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    kills = {"namespace": NS, "investigation": MI}
    # the series exist at 0 before any kill, so that increase() sees the first one
    assert (
        metrics.REGISTRY.get_sample_value(
            "oomforensics_oom_kills_total", {**kills, "evidence": "true"}
        )
        == 0
    )
    killed = pod(
        restarts=1,
        last={"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-26T03:05:00Z"},
    )
    runner.pod_changed(killed, runner.spec)
    await runner.step(body(), [killed])
    await runner.step(body(), [killed])  # seen again: not counted again
    assert value("oomforensics_oom_kills_total", **kills, evidence="true") == 1
    assert value("oomforensics_oom_kills_total", **kills, evidence="false") == 0


async def test_investigations_are_counted_by_condition_and_forgotten_when_gone(
    world: World,
) -> None:
    await runner_for(world).step(body(), [pod()])
    ready = {"namespace": NS, "condition": "Ready", "status": "True", "reason": "Investigating"}
    assert value("oomforensics_investigations", **ready) == 1
    oom = {"namespace": NS, "condition": "OOMObserved", "status": "False", "reason": "NoOOMKills"}
    assert value("oomforensics_investigations", **oom) == 1
    metrics.note_conditions(NS, "other", [Condition("Ready", "True", "Investigating", "ok")])
    assert value("oomforensics_investigations", **ready) == 2
    metrics.forget_investigation(NS, "other")
    metrics.forget_investigation(NS, MI)
    assert value("oomforensics_investigations", **ready) == 0
    assert captures("baseline", "stored") == 0  # its series are gone too


async def test_no_label_names_a_pod_its_uid_or_a_snapshot(world: World) -> None:
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    world.working_set = 85 * MiB
    await runner.step(body(), [pod()])
    world.archive_ = DownArchive()
    world.working_set = 96 * MiB
    await runner.step(body(), [pod()])
    keys = [k.path() for k in await world.archive_.list_snapshots(NS, MI)]
    label_values = {
        v
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        for v in s.labels.values()
    }
    assert NS in label_values and MI in label_values
    for forbidden in ("db-0", UID_A, *keys):
        assert not [v for v in label_values if forbidden in v], forbidden


def test_every_metric_is_named_as_prometheus_asks() -> None:
    families = list(metrics.REGISTRY.collect())
    assert len(families) >= 12
    for family in families:
        assert family.name.startswith("oomforensics_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        if "bytes" in family.name:
            assert family.name.endswith("_bytes"), family.name


def api_answering(status: int) -> KubeApi:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"message": "no"})

    return KubeApi(httpx.AsyncClient(base_url="https://api", transport=httpx.MockTransport(answer)))


async def test_api_errors_are_counted_by_method_and_status() -> None:
    forbidden = {"method": "GET", "status": "403"}
    before = value("oomforensics_api_errors_total", **forbidden)
    api = api_answering(403)
    with pytest.raises(Exception, match="no"):
        await api.pod_metrics("shop")
    assert value("oomforensics_api_errors_total", **forbidden) == before + 1
    ok = api_answering(200)
    before_all = sum(
        s.value
        for f in metrics.REGISTRY.collect()
        if f.name == "oomforensics_api_errors"
        for s in f.samples
        if s.name.endswith("_total")
    )
    await ok.pod_metrics("shop")
    after_all = sum(
        s.value
        for f in metrics.REGISTRY.collect()
        if f.name == "oomforensics_api_errors"
        for s in f.samples
        if s.name.endswith("_total")
    )
    assert after_all == before_all  # success is not an error

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    unreachable = KubeApi(
        httpx.AsyncClient(base_url="https://api", transport=httpx.MockTransport(refuse))
    )
    before = value("oomforensics_api_errors_total", method="PATCH", status="0")
    with pytest.raises(Exception, match="connection refused"):
        await unreachable.patch_status("shop", "db", {})
    assert value("oomforensics_api_errors_total", method="PATCH", status="0") == before + 1


async def test_the_page_is_served_over_http_in_prometheus_text_format(world: World) -> None:
    await runner_for(world).step(body(), [pod()])
    server = await metrics.serve("127.0.0.1", 0)
    try:
        assert server.port > 0
        async with httpx.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.aclose()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(page.text)}
    (stored,) = [
        s
        for s in families["oomforensics_captures"].samples
        if s.name == "oomforensics_captures_total"
        and s.labels
        == {"namespace": NS, "investigation": MI, "reason": "baseline", "outcome": "stored"}
    ]
    assert stored.value == 1
    assert families["oomforensics_build_info"].samples[0].value == 1


async def test_a_port_already_taken_is_logged_and_the_operator_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    services = _Services()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = OperatorSettings(metrics_port=port, metrics_address="127.0.0.1")
        with caplog.at_level(logging.ERROR):
            assert await serve_metrics(services, config) is None  # type: ignore[arg-type]
    assert f"cannot listen on port {port}" in caplog.text
    assert await serve_metrics(services, OperatorSettings(metrics_port=0)) is None  # type: ignore[arg-type]


class _Services:
    """What serve_metrics reads of OperatorServices: the archives, and a spool for each."""

    archives: Mapping[Any, Archive] = {}

    def spool(self, archive: Archive) -> Any:
        raise AssertionError("no archive, no spool")


def test_the_port_and_address_come_from_the_environment() -> None:
    assert OperatorSettings.from_env({}).metrics_port == 8000
    assert OperatorSettings.from_env({}).metrics_address == ""
    read = OperatorSettings.from_env({"OOMF_METRICS_PORT": "9102", "OOMF_METRICS_ADDRESS": "::"})
    assert (read.metrics_port, read.metrics_address) == (9102, "::")
    assert OperatorSettings.from_env({"OOMF_METRICS_PORT": "0"}).metrics_port == 0
    for bad in ("http", "-1", "65536", "80.5"):
        with pytest.raises(InvalidSettings, match="OOMF_METRICS_PORT"):
            OperatorSettings.from_env({"OOMF_METRICS_PORT": bad})
