"""The operator's Prometheus metrics: what a platform team graphs and alerts on.

Every metric lives in `REGISTRY` (not prometheus_client's global one), so tests read values
from it and nothing another library registers globally ends up on our page. Call sites are
one line each: `record_capture(...)` in the capturer, `record_oom_kill(...)` in the kill
recorder, `record_api_error(...)` in the API client, `note_conditions(...)` in the status
writer. The spool is not counted as it changes: `watch_spools` hands the collector a
callable, and the spool's depth and bytes are read from the spools themselves at scrape time.

Labels are bounded: namespace, investigation, capture reason (baseline, periodic,
threshold-N for the few configured N, predicted, growth, manual), outcome, condition type,
status and reason, HTTP method and status. Never a pod name, uid or snapshot key: a pod's
restarts and recreations would grow the series without bound.

`serve` runs the /metrics page with aiohttp on the operator's event loop (prometheus_client's
aiohttp handler): the collectors then read the spools and the conditions in the thread that
changes them, where prometheus_client's own HTTP server would read them from a thread of its
own while the loop mutates them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from oomforensics import __version__
from oomforensics.archive.spool import Spool
from oomforensics.k8s.status import CONDITION_TYPES, Condition

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
PREFIX = "oomforensics"


class CaptureOutcome(StrEnum):
    """How one capture attempt ended (the `outcome` label)."""

    STORED = "stored"  # in the archive
    SPOOLED = "spooled"  # the store did not answer: durable in the local spool, uploaded later
    CAPTURE_FAILED = "capture_failed"  # the heap profile could not be fetched
    STORAGE_FAILED = "storage_failed"  # fetched, but neither the store nor the spool kept it


DURABLE = (CaptureOutcome.STORED, CaptureOutcome.SPOOLED)


class ArchiveErrorKind(StrEnum):
    """What went wrong with the archive (the `error` label)."""

    STORE_UNAVAILABLE = "store_unavailable"  # a snapshot went to the spool instead
    WRITE_FAILED = "write_failed"  # a snapshot was lost: neither store nor spool kept it


CAPTURES = Counter(
    f"{PREFIX}_captures",
    "Capture attempts (a snapshot a trigger asked for), by capture reason and outcome.",
    ["namespace", "investigation", "reason", "outcome"],
    registry=REGISTRY,
)
# Profile fetches take tens of milliseconds on a small heap and up to OOMF_CAPTURE_TIMEOUT
# (30 s by default) on a loaded pod: the buckets span both.
CAPTURE_SECONDS = Histogram(
    f"{PREFIX}_capture_duration_seconds",
    "Time to fetch one snapshot's profiles from the target, failed fetches included.",
    ["namespace"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
# From the decision to the snapshot being safe: the capture slot (OOMF_MAX_CAPTURES), the
# fetch and the write. A pre-OOM capture is only useful when this is shorter than the time
# the container has left.
DURABLE_SECONDS = Histogram(
    f"{PREFIX}_trigger_to_durable_seconds",
    "Time from a trigger's decision to its snapshot being durable in the archive or spool.",
    ["namespace", "reason"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
SNAPSHOT_BYTES = Counter(
    f"{PREFIX}_snapshot_bytes",
    "Bytes of snapshot files recorded: stored in the archive, or spooled until it answers.",
    ["namespace", "investigation", "outcome"],
    registry=REGISTRY,
)
OOM_KILLS = Counter(
    f"{PREFIX}_oom_kills",
    "OOM kills of watched containers, once per container run; evidence=true when a "
    "snapshot of that run was taken before the kill.",
    ["namespace", "investigation", "evidence"],
    registry=REGISTRY,
)
ARCHIVE_ERRORS = Counter(
    f"{PREFIX}_archive_errors",
    "Snapshot writes the archive refused: store_unavailable (kept in the spool), "
    "write_failed (the snapshot was lost).",
    ["namespace", "investigation", "error"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    f"{PREFIX}_api_errors",
    "Failed Kubernetes API calls the operator makes itself (status 0: no answer); kopf's "
    "own watches are not counted.",
    ["method", "status"],
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    f"{PREFIX}_build_info",
    "The operator's version (always 1).",
    ["version"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__).set(1)


def record_capture(
    namespace: str,
    investigation: str,
    reason: str,
    outcome: CaptureOutcome,
    *,
    capture_seconds: float | None = None,
    durable_seconds: float | None = None,
    size: int = 0,
) -> None:
    """One capture attempt: its outcome, how long the fetch took, and for a durable snapshot
    the time from the trigger and its bytes. A snapshot that went to the spool or was lost is
    an archive error too."""
    CAPTURES.labels(namespace, investigation, reason, outcome.value).inc()
    if capture_seconds is not None:
        CAPTURE_SECONDS.labels(namespace).observe(max(0.0, capture_seconds))
    if outcome in DURABLE:
        if durable_seconds is not None:
            DURABLE_SECONDS.labels(namespace, reason).observe(max(0.0, durable_seconds))
        SNAPSHOT_BYTES.labels(namespace, investigation, outcome.value).inc(size)
    if outcome is CaptureOutcome.SPOOLED:
        ARCHIVE_ERRORS.labels(namespace, investigation, ArchiveErrorKind.STORE_UNAVAILABLE).inc()
    elif outcome is CaptureOutcome.STORAGE_FAILED:
        ARCHIVE_ERRORS.labels(namespace, investigation, ArchiveErrorKind.WRITE_FAILED).inc()


def record_oom_kill(namespace: str, investigation: str, *, evidence: bool) -> None:
    """An OOM kill recorded (once per container run)."""
    OOM_KILLS.labels(namespace, investigation, "true" if evidence else "false").inc()


def record_api_error(method: str, status: int) -> None:
    API_ERRORS.labels(method.upper(), str(status)).inc()


# --- read at scrape time --------------------------------------------------------------


class SpoolCollector(Collector):
    """The spools' depth, bytes and cap, read from the spools when Prometheus scrapes."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, Spool]] = dict  # archive URL -> its spool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_spool_snapshots",
            "Snapshots waiting in the local spool for their archive to answer.",
            labels=["archive"],
        )
        size = GaugeMetricFamily(
            f"{PREFIX}_spool_bytes",
            "Bytes waiting in the local spool for their archive to answer.",
            labels=["archive"],
        )
        cap = GaugeMetricFamily(
            f"{PREFIX}_spool_capacity_bytes",
            "The spool's cap (OOMF_SPOOL_MAX_BYTES); when full, routine snapshots are evicted.",
            labels=["archive"],
        )
        for url, spool in sorted(self.source().items()):
            depth.add_metric([url], len(spool.pending()))
            size.add_metric([url], spool.size_bytes)
            cap.add_metric([url], spool.max_bytes)
        yield depth
        yield size
        yield cap


@dataclass(frozen=True, slots=True)
class _Noted:
    namespace: str
    conditions: tuple[tuple[str, str, str], ...]  # (type, status, reason)


class ConditionCollector(Collector):
    """How many investigations have each condition in each status (and reason), from the
    conditions their status writers last decided."""

    def __init__(self) -> None:
        self.noted: dict[tuple[str, str], _Noted] = {}  # (namespace, name) -> conditions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{PREFIX}_investigations",
            "MemoryInvestigations by condition type, status and reason.",
            labels=["namespace", "condition", "status", "reason"],
        )
        counts: dict[tuple[str, str, str, str], int] = {}
        for noted in self.noted.values():
            for type_, status, reason in noted.conditions:
                labels = (noted.namespace, type_, status, reason)
                counts[labels] = counts.get(labels, 0) + 1
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        yield family


SPOOLS = SpoolCollector()
CONDITIONS = ConditionCollector()
REGISTRY.register(SPOOLS)
REGISTRY.register(CONDITIONS)


def watch_spools(source: Callable[[], Mapping[str, Spool]]) -> None:
    """Where the spools are (archive URL -> spool), asked again at every scrape."""
    SPOOLS.source = source


def note_conditions(namespace: str, name: str, conditions: Iterable[Condition]) -> None:
    """The conditions an investigation's status now has.

    The first time, its OOM kill counters start at 0: `increase()` over a series that
    appears at 1 sees no increase, and the first kill would never alert."""
    if (namespace, name) not in CONDITIONS.noted:
        for evidence in ("true", "false"):
            OOM_KILLS.labels(namespace, name, evidence)
    known = [c for c in conditions if c.type in CONDITION_TYPES]
    CONDITIONS.noted[(namespace, name)] = _Noted(
        namespace, tuple((c.type, c.status, c.reason) for c in known)
    )


def forget_investigation(namespace: str, name: str) -> None:
    """The investigation is gone (or no longer this operator's): it counts no more, and its
    series go (investigations come and go; their series must not pile up)."""
    CONDITIONS.noted.pop((namespace, name), None)
    for counter in (CAPTURES, SNAPSHOT_BYTES, OOM_KILLS, ARCHIVE_ERRORS):
        counter.remove_by_labels({"namespace": namespace, "investigation": name})


# --- the /metrics page ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsServer:
    runner: web.AppRunner
    port: int

    async def aclose(self) -> None:
        await self.runner.cleanup()


async def serve(address: str, port: int) -> MetricsServer:
    """/metrics on `address`:`port`, served on the running event loop.

    Raises OSError when the port cannot be bound."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(REGISTRY))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address or None, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    # The port bound: the one asked for, or the one the system chose for 0.
    bound = next((int(a[1]) for a in runner.addresses if isinstance(a, tuple)), port)
    return MetricsServer(runner, bound)
