"""Benchmark: one operator process, 1,000 pods under 100 MemoryInvestigations.

The test cluster (tests/support/cluster): the real API server (etcd + apiextensions-apiserver)
for the custom resources behind the front, which serves pods and PodMetrics from its store.
The operator runs as its own process, `oomforensics run -A`, configured as in a cluster
(KUBECONFIG to the front, OOMF_STORAGE_URL to S3 on moto, OOMF_SPOOL_DIR).

- Pods are objects put in the front's store (not processes): `--namespaces` namespaces,
  `--pods` pods spread over them, `--investigations` investigations each selecting the same
  number of pods by label. Their status says Running with podIP 127.0.0.1 and a container
  port that is one of `--fixtures` real leaky Go fixture processes (`-mode steady`): captures
  fetch real profiles; pods share the processes.
- PodMetrics: every pod gets an emulated working set (35-60 % of its 256 MiB limit) in
  `front.metrics`, republished every 15 s with a small drift, as metrics-server would.
- Threshold crossings: at times spread over the run, `--crossings` pods (in different
  investigations) jump to 85 % of their limit. The lag is measured from that moment to the
  threshold snapshot being listed in S3 and to it showing in the investigation's status
  (both polled every 0.25 s, S3 directly and the status from the real API server, so these
  polls are not operator API calls).
- The operator process is sampled every second from /proc: CPU (utime + stime) and RSS.
- API requests per minute by verb and resource come from `front.calls` (the operator is the
  only client of the front once it runs; the benchmark writes to the store directly).

Targets: RSS under 200 MiB, under 10 % of one core on average, no per-pod polling (no GET of
a single pod or PodMetrics; PodMetrics listed per namespace). `--py-spy PATH` records a
py-spy profile of the operator for the whole run (top functions in the output). Results go to
the `<!-- bench:scale -->` section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_scale.py [--pods 1000] [--investigations 100]
        [--namespaces 10] [--duration 600] [--fixtures 5] [--crossings 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # tests.support (the cluster, moto) lives at the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402
from bench_analysis import machine_line, update_results  # noqa: E402

from oomforensics.archive.store import Archive, ArchiveError  # noqa: E402
from tests.deploy.dockerfile import stages  # noqa: E402
from tests.support.apiserver import ApiServerProcess  # noqa: E402
from tests.support.cluster import (  # noqa: E402
    EVENTS,
    NAMESPACES,
    PODS,
    ClusterFront,
    ContainerUsage,
)
from tests.support.leaky import FIXTURE_BIN, LeakyService  # noqa: E402
from tests.support.moto import MotoServer  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "scale"
CRD = yaml.safe_load((ROOT / "crds" / "memoryinvestigations.oomforensics.io.yaml").read_text())
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GROUP_PATH = "/apis/oomforensics.io/v1alpha1"
MiB = 2**20
LIMIT = 256 * MiB
CROSSING = 0.85  # share of the limit a crossing pod jumps to
METRICS_PERIOD = 15.0  # metrics-server's usual resolution
TICK = 1.0  # /proc sampling period
TARGET_RSS = 200 * MiB
TARGET_CPU = 10.0  # percent of one core, on average
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the cluster -----------------------------------------------------------------------------


def namespace_of(pod_index: int, args: argparse.Namespace) -> str:
    return f"bench-{pod_index % args.namespaces}"


def investigation_of(pod_index: int, args: argparse.Namespace) -> str:
    """Investigations are spread evenly over the namespaces, pods evenly over investigations."""
    return f"inv-{pod_index % args.investigations}"


def pod_body(index: int, args: argparse.Namespace, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"app-{index:04d}",
            "namespace": namespace_of(index, args),
            "labels": {"app": "bench", "investigation": investigation_of(index, args)},
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.test/oomforensics/leaky:v1",
                    "resources": {"limits": {"memory": f"{LIMIT // MiB}Mi"}},
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                }
            ],
        },
    }


def running_status(pod: dict[str, Any]) -> None:
    started = datetime.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": started,
        "qosClass": "Burstable",
        "containerStatuses": [
            {
                "name": "app",
                "image": "registry.test/oomforensics/leaky:v1",
                "imageID": "registry.test/oomforensics/leaky@sha256:0",
                "containerID": f"containerd://{os.urandom(8).hex()}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            }
        ],
    }


def investigation_body(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "bench", "investigation": name}},
            "endpoint": {"portName": "http"},
            # Defaults otherwise (sampling every 15 s, thresholds 80/90/95 %, baseline
            # snapshot); periodic snapshots hourly so that the run measures steady state.
            "snapshots": {"interval": "1h"},
        },
    }


@dataclass
class Crossing:
    pod: str
    namespace: str
    investigation: str
    at: float = math.nan  # wall clock: metrics raised
    captured_at: float = math.nan  # the snapshot key's time (capture started)
    in_archive: float = math.nan  # first seen listed in S3
    in_status: float = math.nan  # first seen in the investigation's status
    reason: str = ""
    before: str = ""  # the target's lastSnapshot in the status when the metrics rose


class Board:
    """The emulated working sets, republished every METRICS_PERIOD like metrics-server."""

    def __init__(self, front: ClusterFront, pods: list[tuple[str, str]], seed: int = 1) -> None:
        self.front = front
        self.rng = random.Random(seed)
        self.levels = {pod: self.rng.uniform(0.35, 0.6) for pod in pods}
        self.raised: set[tuple[str, str]] = set()

    def publish(self, only: Sequence[tuple[str, str]] | None = None) -> None:
        for namespace, name in only or list(self.levels):
            if (namespace, name) not in self.raised:  # drift +-1 % of the limit, bounded
                level = self.levels[(namespace, name)] + self.rng.uniform(-0.01, 0.01)
                self.levels[(namespace, name)] = min(0.65, max(0.3, level))
            usage = ContainerUsage(int(self.levels[(namespace, name)] * LIMIT))
            self.front.metrics.publish(namespace, name, {"app": usage}, METRICS_PERIOD)

    def raise_to(self, namespace: str, name: str, share: float) -> None:
        self.raised.add((namespace, name))
        self.levels[(namespace, name)] = share
        self.publish([(namespace, name)])


# --- the operator process --------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # seconds since the operator started
    cpu: float  # seconds of CPU used so far
    rss: int  # bytes


def read_proc(pid: int) -> tuple[float, int]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


def image_malloc_settings() -> dict[str, str]:
    """The allocator settings the image gives the operator (MALLOC_* in the Dockerfile)."""
    runtime = stages(ROOT / "Dockerfile")[-1]
    return {k: v for k, v in runtime.env().items() if k.startswith("MALLOC_")}


@contextlib.contextmanager
def operator_process(
    front: ClusterFront, s3: MotoServer, spool: Path, log: Path, verbose: bool
) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(
        os.environ,
        KUBECONFIG=str(front.kubeconfig),
        OOMF_STORAGE_URL=s3.archive_url("bench-scale"),
        OOMF_STORAGE_OPTIONS=",".join(f"{k}={v}" for k, v in s3.options.items()),
        AWS_ACCESS_KEY_ID=s3.credentials["access_key_id"],
        AWS_SECRET_ACCESS_KEY=s3.credentials["secret_access_key"],
        OOMF_SPOOL_DIR=str(spool),
    )
    env.pop("OOMF_NAMESPACES", None)
    env.update(image_malloc_settings())
    command = [str(Path(sys.executable).with_name("oomforensics")), "run", "-A"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command + (["-v"] if verbose else []),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    minutes: list[Counter[tuple[str, str]]] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)
    per_pod_gets: int = 0
    metrics_lists: int = 0
    baseline_done_at: float = math.nan  # seconds after start: every pod had its baseline
    snapshots: int = 0
    exit_code: int | None = None
    profile: str = ""
    events: Counter[str] = field(default_factory=Counter)  # Events posted, by reason
    errors: Counter[str] = field(default_factory=Counter)  # targets' lastError at the end


def call_key(call: Any) -> tuple[str, str]:
    resource = call.resource + (f"/{call.subresource}" if call.subresource else "")
    if call.api_group:
        resource = f"{resource}.{call.api_group}"
    return call.verb, resource or call.path


async def setup_cluster(
    front: ClusterFront, args: argparse.Namespace, ports: list[int]
) -> list[tuple[str, str]]:
    """The CRD, namespaces, investigations (API) and pods (store); returns (ns, pod)."""
    upstream = front.upstream
    assert upstream is not None
    async with httpx.AsyncClient(base_url=front.url, timeout=60) as http:
        response = await http.post(CRDS, json=CRD)
        assert response.status_code in (201, 409), response.text
        for _ in range(240):
            if (await http.get(f"{GROUP_PATH}/memoryinvestigations")).status_code == 200:
                break
            await asyncio.sleep(0.25)
        for n in range(args.namespaces):
            front.store.create(NAMESPACES, {"metadata": {"name": f"bench-{n}"}})
        for i in range(args.investigations):
            namespace = f"bench-{i % args.namespaces}"
            body = investigation_body(f"inv-{i}", namespace)
            path = f"{GROUP_PATH}/namespaces/{namespace}/memoryinvestigations"
            answer = await http.post(path, json=body)
            assert answer.status_code == 201, answer.text
    pods = []
    for index in range(args.pods):
        body = pod_body(index, args, ports[index % len(ports)])
        created = front.store.create(PODS, body)
        meta = created["metadata"]
        front.store.update(PODS, meta["namespace"], meta["name"], running_status, "status")
        pods.append((meta["namespace"], meta["name"]))
    return pods


def check_layout(args: argparse.Namespace) -> None:
    """Every investigation must select pods of its own namespace only."""
    for index in range(args.pods):
        inv = int(investigation_of(index, args).split("-")[1])
        if inv % args.namespaces != index % args.namespaces:
            raise SystemExit(
                "--investigations must be a multiple of --namespaces (each investigation "
                "selects pods of its own namespace)"
            )


async def last_snapshot(direct: httpx.AsyncClient, crossing: Crossing) -> str:
    """The crossing pod's lastSnapshot in its investigation's status (from the API server)."""
    path = (
        f"{GROUP_PATH}/namespaces/{crossing.namespace}/memoryinvestigations/"
        f"{crossing.investigation}"
    )
    response = await direct.get(path)
    if response.status_code != 200:
        return ""
    for target in (response.json().get("status") or {}).get("targets") or []:
        if target.get("pod") == crossing.pod:
            return str(target.get("lastSnapshot") or "")
    return ""


async def watch_crossing(
    crossing: Crossing, archive: Archive, direct: httpx.AsyncClient, deadline: float
) -> None:
    """The first snapshot of the pod captured after the rise, in S3 and in the status."""

    def pending() -> bool:
        return math.isnan(crossing.in_archive) or math.isnan(crossing.in_status)

    crossing.before = await last_snapshot(direct, crossing)
    while time.time() < deadline and pending():
        if math.isnan(crossing.in_archive):
            with contextlib.suppress(ArchiveError):
                keys = await archive.list_snapshots(
                    crossing.namespace, crossing.investigation, crossing.pod, "app", 0
                )
                late = [k for k in keys if k.captured_at.timestamp() >= crossing.at - 0.01]
                if late:
                    crossing.in_archive = time.time()
                    crossing.captured_at = late[0].captured_at.timestamp()
                    crossing.reason = late[0].reason
        if math.isnan(crossing.in_status):
            last = await last_snapshot(direct, crossing)
            if last and last != crossing.before:
                crossing.in_status = time.time()
        await asyncio.sleep(0.25)


async def drive(
    args: argparse.Namespace,
    front: ClusterFront,
    board: Board,
    pods: list[tuple[str, str]],
    archive: Archive,
    process: subprocess.Popen[bytes],
    outcome: Outcome,
) -> None:
    upstream = front.upstream
    assert upstream is not None
    start = time.monotonic()
    first_call = len(front.calls)
    minute_mark = first_call
    next_minute = start + 60
    next_metrics = start + METRICS_PERIOD
    rng = random.Random(2)
    chosen_investigations = rng.sample(range(args.investigations), args.crossings)
    for inv in chosen_investigations:
        index = next(i for i in range(args.pods) if i % args.investigations == inv)
        namespace, name = pods[index]
        outcome.crossings.append(Crossing(name, namespace, f"inv-{inv}"))
    # Crossings at 30 % ... 80 % of the run, not on the metrics cadence (+ 3.7 s offset).
    times = [
        start + args.duration * (0.3 + 0.5 * k / max(1, args.crossings - 1)) + 3.7
        for k in range(args.crossings)
    ]
    watchers: list[asyncio.Task[None]] = []
    baseline_probe = start + 10
    async with httpx.AsyncClient(
        base_url=upstream.url, verify=upstream.ssl_context(), timeout=30
    ) as direct:
        while time.monotonic() - start < args.duration:
            if process.poll() is not None:
                outcome.exit_code = process.returncode
                break
            now = time.monotonic()
            cpu, rss = read_proc(process.pid)
            outcome.samples.append(Sample(now - start, cpu, rss))
            if now >= next_metrics:
                board.publish()
                next_metrics += METRICS_PERIOD
            for crossing, when in zip(outcome.crossings, times, strict=True):
                if math.isnan(crossing.at) and now >= when:
                    board.raise_to(crossing.namespace, crossing.pod, CROSSING)
                    crossing.at = time.time()
                    deadline = time.time() + max(120.0, args.duration)
                    watchers.append(
                        asyncio.create_task(watch_crossing(crossing, archive, direct, deadline))
                    )
            if now >= next_minute:
                calls = front.calls[minute_mark:]
                minute_mark += len(calls)
                outcome.minutes.append(Counter(call_key(c) for c in calls))
                next_minute += 60
            if math.isnan(outcome.baseline_done_at) and now >= baseline_probe:
                baseline_probe = now + 10
                with contextlib.suppress(ArchiveError):
                    outcome.snapshots = len(await archive.list_snapshots())
                count = outcome.snapshots
                if count >= len(pods):
                    outcome.baseline_done_at = now - start
            await asyncio.sleep(max(0.0, start + len(outcome.samples) * TICK - time.monotonic()))
        # The last partial minute, scaled in the report by its length.
        rest = front.calls[minute_mark:]
        if rest:
            outcome.minutes.append(Counter(call_key(c) for c in rest))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*watchers), 30 if watchers else 0.01)
        for task in watchers:
            task.cancel()
    calls = front.calls[first_call:]
    outcome.per_pod_gets = sum(
        1
        for c in calls
        if c.verb == "get" and c.resource == "pods" and not c.subresource and c.name
    )
    outcome.metrics_lists = sum(1 for c in calls if c.api_group == "metrics.k8s.io")
    outcome.per_pod_gets += sum(1 for c in calls if c.api_group == "metrics.k8s.io" and c.name)
    outcome.snapshots = len(await archive.list_snapshots())
    outcome.events = Counter(str(e.get("reason")) for e in front.store.items(EVENTS))
    async with httpx.AsyncClient(
        base_url=upstream.url, verify=upstream.ssl_context(), timeout=60
    ) as direct:
        listed = (await direct.get(f"{GROUP_PATH}/memoryinvestigations")).json()
    for item in listed.get("items") or []:
        for target in (item.get("status") or {}).get("targets") or []:
            if target.get("lastError"):
                # The pod name out, so that equal errors count together.
                error = str(target["lastError"]).replace(str(target.get("pod")), "POD")
                outcome.errors[error[:200]] += 1


async def run(args: argparse.Namespace) -> Outcome:
    outcome = Outcome()
    check_layout(args)
    with contextlib.ExitStack() as stack:
        say("starting etcd + apiextensions-apiserver, the front, moto, the fixtures ...")
        server = stack.enter_context(ApiServerProcess()).server
        front = stack.enter_context(ClusterFront(server))
        s3 = stack.enter_context(MotoServer(persist=False))
        services = [
            stack.enter_context(LeakyService("steady", "-listen", "127.0.0.1:0"))
            for _ in range(args.fixtures)
        ]
        ports = [int(s.base_url.rsplit(":", 1)[1]) for s in services]
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        say(f"creating {args.investigations} investigations and {args.pods} pods ...")
        pods = await setup_cluster(front, args, ports)
        board = Board(front, pods)
        board.publish()
        archive = Archive.from_url(
            s3.archive_url("bench-scale"), credentials=s3.credentials, options=s3.options
        )
        log = args.log or workdir / "operator.log"
        say(f"starting the operator (log {log}); measuring for {args.duration:g} s ...")
        process = stack.enter_context(
            operator_process(front, s3, workdir / "spool", log, args.verbose)
        )
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                [str(args.py_spy), "record", "--pid", str(process.pid), "--format", "raw",
                 "--rate", "50", "--nonblocking", "--output", str(workdir / "spy.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            await drive(args, front, board, pods, archive, process, outcome)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(60)
                outcome.profile = top_functions(workdir / "spy.txt")
        if outcome.exit_code is not None:
            say(f"the operator exited with {outcome.exit_code}; log tail:")
            say("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    return outcome


def top_functions(path: Path, top: int = 15) -> str:
    """Self and total sample shares by function, from py-spy's raw (collapsed) output."""
    if not path.exists():
        return ""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return ""
    lines = [f"py-spy, {samples:,} samples (50/s, idle included):", "", "self:"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in own.most_common(top)]
    lines += ["", "total (inclusive):"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


# --- reporting -------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_percent(samples: list[Sample], since: float = 0.0) -> float:
    window = [s for s in samples if s.at >= since]
    if len(window) < 2 or window[-1].at <= window[0].at:
        return math.nan
    return 100 * (window[-1].cpu - window[0].cpu) / (window[-1].at - window[0].at)


def minute_cpu(samples: list[Sample]) -> list[float]:
    out = []
    for m in range(int(samples[-1].at // 60) + 1 if samples else 0):
        window = [s for s in samples if m * 60 <= s.at <= (m + 1) * 60]
        if len(window) >= 2:
            out.append(100 * (window[-1].cpu - window[0].cpu) / (window[-1].at - window[0].at))
    return out


def _mib(n: float) -> str:
    return f"{n / MiB:,.0f} MiB"


def _s(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f} s"


def verdicts(outcome: Outcome) -> list[tuple[str, str, str, bool]]:
    peak = max((s.rss for s in outcome.samples), default=0)
    cpu = cpu_percent(outcome.samples)
    return [
        ("RSS under 200 MiB", f"peak {_mib(peak)}", "", peak < TARGET_RSS),
        ("CPU under 10 % of one core on average", f"{cpu:.1f} %", "", cpu < TARGET_CPU),
        (
            "no per-pod polling (PodMetrics listed per namespace)",
            f"{outcome.per_pod_gets} GETs of one pod or PodMetrics; "
            f"{outcome.metrics_lists} PodMetrics lists",
            "",
            outcome.per_pod_gets == 0,
        ),
    ]


def summary_table(args: argparse.Namespace, outcome: Outcome) -> list[str]:
    samples = outcome.samples
    rss = [s.rss for s in samples]
    steady_from = 120.0
    lines = [
        "| measure | value |",
        "| --- | ---: |",
        f"| measured | {samples[-1].at:.0f} s |" if samples else "| measured | - |",
        f"| RSS: start / median / peak / end | {_mib(rss[0])} / {_mib(statistics.median(rss))} / "
        f"{_mib(max(rss))} / {_mib(rss[-1])} |"
        if rss
        else "| RSS | - |",
        f"| CPU, % of one core: whole run | **{cpu_percent(samples):.1f} %** |",
        f"| CPU, % of one core: after the first {steady_from:.0f} s (baseline burst over) | "
        f"{cpu_percent(samples, steady_from):.1f} % |",
        "| CPU per minute, % of one core | "
        + ", ".join(f"{c:.0f}" for c in minute_cpu(samples))
        + " |",
        f"| every pod's baseline snapshot in S3 after | {_s(outcome.baseline_done_at)} |",
        f"| snapshots in S3 at the end | {outcome.snapshots:,} |",
        "| Events posted, by reason | "
        + (", ".join(f"{r} {n:,}" for r, n in outcome.events.most_common()) or "none")
        + " |",
        "| targets with an error in the status at the end | "
        + (
            "; ".join(f"{n:,} x `{e}`" for e, n in outcome.errors.most_common(3))
            if outcome.errors
            else "none"
        )
        + " |",
    ]
    return lines


def calls_table(outcome: Outcome, duration: float) -> list[str]:
    keys: Counter[tuple[str, str]] = Counter()
    for minute in outcome.minutes:
        keys.update(minute)
    full = outcome.minutes[:-1] if len(outcome.minutes) > 1 else outcome.minutes
    header = "| verb | resource | total | " + " | ".join(
        f"min {i + 1}" for i in range(len(outcome.minutes))
    )
    lines = [
        header + " | per minute, full minutes after the first |",
        "| --- | --- | ---: |" + " ---: |" * len(outcome.minutes) + " ---: |",
    ]
    for key, total in sorted(keys.items(), key=lambda kv: -kv[1]):
        later = [m[key] for m in full[1:]] or [m[key] for m in full]
        cells = " | ".join(str(m[key]) for m in outcome.minutes)
        lines.append(
            f"| {key[0]} | {key[1]} | {total:,} | {cells} | {statistics.mean(later):.1f} |"
        )
    return lines


def crossing_table(outcome: Outcome) -> list[str]:
    lines = [
        "| pod | first capture after the rise | raised -> capture started | "
        "raised -> listed in S3 | raised -> in the status |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for c in outcome.crossings:
        lines.append(
            f"| {c.namespace}/{c.pod} ({c.investigation}) | {c.reason or '-'} | "
            f"{_s(c.captured_at - c.at)} | {_s(c.in_archive - c.at)} | {_s(c.in_status - c.at)} |"
        )
    return lines


def section(args: argparse.Namespace, outcome: Outcome, notes: str) -> str:
    checks = verdicts(outcome)
    lines = [
        f"<!-- bench:{SECTION} -->",
        "## Scale: one operator, many pods",
        "",
        "`"
        + "".join(f"{k}={v} " for k, v in sorted(os.environ.items()) if k.startswith("OOMF_"))
        + f".venv/bin/python benchmarks/bench_scale.py --pods {args.pods} --investigations "
        f"{args.investigations} --namespaces {args.namespaces} --duration {args.duration:g} "
        f"--fixtures {args.fixtures} --crossings {args.crossings}`, "
        f"{datetime.datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {machine_line()}. Load average (1 min) at the start and the end: "
        f"{args.load_start:.2f}, {os.getloadavg()[0]:.2f}: the 2 cores were shared with the "
        "test cluster (etcd, apiextensions-apiserver, the front in this benchmark's process), "
        "moto, the fixtures and other work on the machine.",
        "",
        "Setup: `oomforensics run -A` as its own process against the test cluster, with the "
        "image's allocator settings ("
        + ", ".join(f"{k}={v}" for k, v in image_malloc_settings().items())
        + "): "
        f"{args.pods} pods in {args.namespaces} namespaces, {args.investigations} "
        f"MemoryInvestigations ({args.pods // args.investigations} pods each; spec defaults: "
        "sampling every 15 s, thresholds 80/90/95 %, baseline snapshot; periodic snapshots "
        "hourly), storage S3 on moto. Pods are store objects whose port is one of "
        f"{args.fixtures} real leaky Go fixtures (`-mode steady`), so every capture fetches "
        "real profiles; PodMetrics (256 MiB limit, working sets 30-65 %) republished every "
        f"15 s with drift. {args.crossings} pods jump to {CROSSING:.0%} of their limit at "
        "moments spread over the run.",
        "",
        "| target | measured | met? |",
        "| --- | --- | --- |",
        *(f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, _, ok in checks),
        "",
        *summary_table(args, outcome),
        "",
        "Threshold crossing -> capture (S3 listed and status polled every 0.25 s; the "
        "snapshot key's time is when the capture started, millisecond resolution):",
        "",
        *crossing_table(outcome),
        "",
        "API requests by the operator, per minute of the run (from `front.calls`; watches "
        "count once, when opened; custom resources are proxied to the real API server):",
        "",
        *calls_table(outcome, args.duration),
    ]
    if notes:
        lines += ["", notes]
    if outcome.profile:
        lines += [
            "",
            "<details><summary>py-spy profile of the operator</summary>",
            "",
            "```",
            outcome.profile,
            "```",
            "",
            "</details>",
        ]
    lines.append(f"<!-- /bench:{SECTION} -->")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--investigations", type=int, default=100)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured")
    parser.add_argument("--fixtures", type=int, default=5, help="real fixture processes")
    parser.add_argument("--crossings", type=int, default=5, help="pods crossing 80 %%")
    parser.add_argument("--py-spy", type=Path, help="py-spy binary: profile the operator")
    parser.add_argument("--notes", default="", help="a paragraph for RESULTS.md (findings)")
    parser.add_argument("--log", type=Path, help="keep the operator's log here")
    parser.add_argument("--verbose", action="store_true", help="the operator logs at debug")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if min(args.pods, args.investigations, args.namespaces, args.fixtures) < 1:
        parser.error("--pods, --investigations, --namespaces and --fixtures must be positive")
    if not 0 <= args.crossings <= args.investigations:
        parser.error("--crossings: between 0 and --investigations")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not FIXTURE_BIN.is_file():
        raise SystemExit(f"{FIXTURE_BIN}: fixture not built; run `make setup` first")
    args.load_start = os.getloadavg()[0]
    outcome = asyncio.run(run(args))
    text = section(args, outcome, args.notes)
    print(text)
    if not args.no_write:
        update_results(RESULTS, SECTION, text)
        say(f"Updated {RESULTS}")
    return 0 if outcome.exit_code is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
