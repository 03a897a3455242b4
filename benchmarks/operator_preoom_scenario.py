"""Pre-OOM capture with the operator in the loop, one run at a time on the real test cluster:
used by benchmarks/bench_preoom_operator.py, never by `make test`.

A run: a pod of the leaky fixture (`-mode mapcache`, the leak begins at start, 128 MiB limit,
hostNetwork on 127.0.0.1) on the real kubelet, and a MemoryInvestigation with the CRD's
defaults (15 s sampling) selecting it. Until the status lists the kernel's OOM kill (or the
run's time is up), the benchmark watches beside the operator, every half second: the pod as
the kubelet reports it, the investigation's status, the pod's PodMetrics from metrics-server
and the fixture's own RSS (its /metrics page). The run's row: the kill's pre-OOM snapshot and
its % of the limit, every capture the operator took (its reason, the reading it was taken on,
the fixture's RSS at that moment), the PodMetrics windows seen before the kill; a run that
times out keeps what was seen last instead of a bare "timed out".
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.capture.prometheus import resident_bytes
from oomforensics.k8s.targets import working_sets
from tests.support.kube.pods import NODE_IP, leaky_pod

LIMIT = 128 * 2**20
CHUNK = 64 * 1024
GROWTH_PER_RETAINED = 1.03  # as in bench_preoom.py: working set per retained byte
TICK = 0.5  # seconds between two looks of the benchmark's own
MI_API = "/apis/oomforensics.io/v1alpha1/namespaces/{ns}/memoryinvestigations"
PODS_API = "/api/v1/namespaces/{ns}/pods"
POD_METRICS_API = "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"
JSON = dict[str, Any]


def rate(speed: float) -> float:
    """Leak steps per second for `speed` seconds from 50 % to 100 % of the limit."""
    return LIMIT / 2 / speed / CHUNK / GROWTH_PER_RETAINED


def run_timeout(speed: float) -> float:
    """Seconds a run may take: the leak reaches the limit after 2 x speed from the start."""
    return 4 * speed + 120


@dataclass(frozen=True)
class Bench:
    """What every run shares: the admin's client, the namespace, the image, the archive."""

    http: httpx.AsyncClient
    namespace: str
    image: str
    archive: Archive
    operator: asyncio.Task[None]


@dataclass
class Seen:
    """What the benchmark saw of one run, beside the operator (wall-clock seconds)."""

    started: float
    rss: list[tuple[float, int]] = field(default_factory=list)  # the fixture's own /metrics
    pod_metrics: dict[str, int] = field(default_factory=dict)  # PodMetrics timestamp -> bytes
    readings: list[tuple[float, int]] = field(default_factory=list)  # status workingSetBytes
    pod: JSON = field(default_factory=dict)  # the last pod version
    status: JSON = field(default_factory=dict)  # the investigation's last status
    kill: JSON | None = None  # the status's first OOM kill entry, once there

    def rss_at(self, moment: float) -> int | None:
        """The fixture's RSS at the last look at or before `moment`."""
        index = bisect.bisect_right(self.rss, (moment, 2**63)) - 1
        return self.rss[index][1] if index >= 0 else None

    def killed_at(self) -> float | None:
        """When the kubelet says the first run ended, OOM-killed (1 s resolution)."""
        for status in (self.pod.get("status") or {}).get("containerStatuses") or []:
            # Terminated until the kubelet restarts it, then the container's last state.
            for state in (status.get("state"), status.get("lastState")):
                terminated = (state or {}).get("terminated") or {}
                if terminated.get("reason") == "OOMKilled" and terminated.get("finishedAt"):
                    return _moment(terminated["finishedAt"])
        return None

    def last_seen(self) -> JSON:
        """The pod's last container states and the operator's last readings and verdicts."""
        containers = [
            {k: c.get(k) for k in ("restartCount", "ready", "state", "lastState")}
            for c in (self.pod.get("status") or {}).get("containerStatuses") or []
        ]
        conditions = {
            c.get("type"): f"{c.get('status')} {c.get('reason')}: {c.get('message')}"
            for c in self.status.get("conditions") or []
        }
        return {
            "podPhase": (self.pod.get("status") or {}).get("phase"),
            "containers": containers,
            "targets": self.status.get("targets"),
            "snapshots": self.status.get("snapshots"),
            "oomKills": self.status.get("oomKills"),
            "conditions": conditions,
            "operatorReadings": [
                [round(at - self.started, 1), _percent(b)] for at, b in self.readings[-8:]
            ],
            "fixtureRss": [[round(at - self.started, 1), _percent(b)] for at, b in self.rss[-4:]],
        }


async def one_run(bench: Bench, name: str, speed: float) -> JSON:
    """One leak to its OOM kill with the operator watching; the row for the report."""
    ns, http = bench.namespace, bench.http
    pod = leaky_pod(name, ns, bench.image, "mapcache", labels={"app": name},
                    memory_limit="128Mi", rate=round(rate(speed), 3), chunk=CHUNK)  # fmt: skip
    port = int(pod["spec"]["containers"][0]["ports"][0]["containerPort"])
    investigation = {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}}},  # the CRD's defaults
    }
    created = await http.post(MI_API.format(ns=ns), json=investigation)
    assert created.status_code == 201, created.text
    seen = Seen(started=time.time())
    created = await http.post(PODS_API.format(ns=ns), json=pod)
    assert created.status_code == 201, created.text
    outcome = "killed"
    async with httpx.AsyncClient(timeout=2) as fixture:
        deadline = time.monotonic() + run_timeout(speed)
        while seen.kill is None:
            if bench.operator.done():
                outcome = "operator stopped"
                break
            if time.monotonic() > deadline:
                outcome = f"timed out after {run_timeout(speed):g}s"
                break
            await look(http, fixture, ns, name, port, seen)
            if seen.kill is None:
                await asyncio.sleep(TICK)
    recorded = time.time()
    with contextlib.suppress(httpx.HTTPError):
        await http.delete(f"{PODS_API.format(ns=ns)}/{name}", params={"gracePeriodSeconds": 0})
        await http.delete(f"{MI_API.format(ns=ns)}/{name}")
    return await row(bench, name, speed, outcome, seen, recorded)


async def look(
    http: httpx.AsyncClient,
    fixture: httpx.AsyncClient,
    ns: str,
    name: str,
    port: int,
    seen: Seen,
) -> None:
    """One look at the pod, the status, PodMetrics and the fixture, all at once."""
    pod, body, metrics, page = await asyncio.gather(
        _get_json(http, f"{PODS_API.format(ns=ns)}/{name}"),
        _get_json(http, f"{MI_API.format(ns=ns)}/{name}"),
        _get_json(http, f"{POD_METRICS_API.format(ns=ns)}/{name}"),
        _get_text(fixture, f"http://{NODE_IP}:{port}/metrics"),
    )
    now = time.time()
    if pod:
        seen.pod = pod
    if body:
        seen.status = body.get("status") or {}
        targets = seen.status.get("targets") or []
        working_set = targets[0].get("workingSetBytes") if targets else None
        if isinstance(working_set, int) and (
            not seen.readings or seen.readings[-1][1] != working_set
        ):
            seen.readings.append((now, working_set))
        kills = seen.status.get("oomKills") or []
        seen.kill = kills[0] if kills else None
    if metrics and metrics.get("timestamp"):
        found = working_sets([metrics]).get((name, "app"))
        if found is not None:
            seen.pod_metrics[str(metrics["timestamp"])] = found
    rss = resident_bytes(page) if page else None
    if rss:
        seen.rss.append((now, rss))


async def row(
    bench: Bench, name: str, speed: float, outcome: str, seen: Seen, recorded: float
) -> JSON:
    kill = seen.kill or {}
    percent = kill.get("percentOfLimit")
    killed_at = seen.killed_at()
    taken = await captures(bench, name, seen)
    pre = [c for c in taken if c.get("path") == kill.get("preOomSnapshot")]
    for capture in taken:
        capture.pop("path", None)  # in the status's entry already; too long for the report
    windows = sorted((_moment(t), b) for t, b in seen.pod_metrics.items())
    before_kill = [w for w in windows if killed_at is None or w[0] <= killed_at]
    result: JSON = {
        "speed": speed,
        "name": name,
        "rate": round(rate(speed), 3),
        "outcome": outcome,
        "startToKillSeconds": round(recorded - seen.started, 1) if seen.kill else None,
        "killToRecordedSeconds": (
            round(recorded - killed_at, 1) if seen.kill and killed_at is not None else None
        ),
        "preOomSnapshot": kill.get("preOomSnapshot"),
        "percentOfLimit": float(str(percent).rstrip("%")) if percent else None,
        "preOomRssPercent": pre[-1].get("rssPercent") if pre else None,
        "captures": taken,
        "operatorReadings": [[round(at - seen.started, 1), _percent(b)] for at, b in seen.readings],
        "podMetricsWindows": len(before_kill),
        "podMetricsPercents": [_percent(b) for _, b in before_kill],
        "peakRssPercent": _percent(max(b for _, b in seen.rss)) if seen.rss else None,
    }
    result["lastSeen"] = seen.last_seen()  # the report shows it for the runs that missed
    return result


async def captures(bench: Bench, name: str, seen: Seen) -> list[JSON]:
    """The run's snapshots in the archive: reason, seconds from the pod's creation, the
    operator's reading (% of the limit) and the fixture's RSS then, by the benchmark's look."""
    try:
        keys = await bench.archive.list_snapshots(bench.namespace, name, name, "app", 0)
    except ArchiveError as exc:
        return [{"error": str(exc)}]
    found: list[JSON] = []
    for key in keys:
        try:
            manifest = await bench.archive.read_manifest(key)
        except ArchiveError as exc:
            found.append({"reason": key.reason, "error": str(exc)})
            continue
        at = manifest.captured_at.timestamp()
        rss = seen.rss_at(at)
        found.append(
            {
                "path": key.path(),
                "reason": key.reason,
                "at": round(at - seen.started, 1),
                "percent": _percent(manifest.working_set_bytes, manifest.limit_bytes),
                "rssPercent": _percent(rss) if rss is not None else None,
            }
        )
    return found


async def _get_json(http: httpx.AsyncClient, path: str) -> JSON | None:
    try:
        response = await http.get(path)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: JSON = response.json()
    return body


async def _get_text(http: httpx.AsyncClient, url: str) -> str | None:
    try:
        response = await http.get(url)
    except httpx.HTTPError:
        return None  # not listening yet, or killed
    return response.text if response.status_code == 200 else None


def _moment(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _percent(value: int, limit: int | None = LIMIT) -> float | None:
    return round(100 * value / limit, 1) if limit else None


def kept(result: Mapping[str, Any]) -> bool:
    """The run's pre-OOM snapshot was taken at >= 80 % of the limit (the operator's reading)."""
    percent = result.get("percentOfLimit")
    return percent is not None and percent >= 80
