"""Benchmark: does a fast leak leave a snapshot at >= 80 % of the limit before the OOM kill?

For leak speeds that take the fixture from half its memory limit to the limit in about 60 s,
20 s and 5 s, each run starts the leaky Go fixture (`-mode mapcache`) in a fresh child memory
cgroup (cgroup v1 or v2) with a limit, watches it with `watch_once` (the local mode of the
operator's engine: triggers, capture, spool, archive) using the operator's default
TriggerSettings, and lets the kernel OOM-kill it. Per run it records:

- every capture the engine made (reason, % of the limit at the triggering sample, trigger ->
  durable latency, when it became durable, whether it went through the spool, stored size);
- when the process died, as seen by this process reaping its child (asyncio; milliseconds),
  and when the engine noticed (its next sample after the kill);
- the kernel's oom_kill counter of the cgroup, and the exit code;
- the working set every 50 ms from the cgroup (independently of the engine) to measure the
  real half-to-full time of the leak, and the engine's own samples.

Two variants of each speed:

- `start`: the leak begins when the process starts, and the watch starts with it;
- `calm`: the service first runs calm (same binary and mode with `-max-bytes 1`, so it stops
  leaking after one step) on a fixed port, then a shell wrapper stops it and execs the
  leaking one on the same port, in the same cgroup and under the same PID: the engine has
  settled to its relaxed sampling interval when the leak begins. The fixture cannot delay its
  own leak, hence the wrapper. Run i stays calm for `--calm` + (i + 0.5) / repeat x
  sample_interval seconds, so the leak starts at phases spread evenly over one sampling
  interval of the engine (a fixed calm would test a single phase).

A run "keeps a pre-OOM snapshot" when a capture triggered at >= 80 % of the limit was durable
(in the archive or the spool) before the process died. Results go to the section between
`<!-- bench:preoom -->` and `<!-- /bench:preoom -->` of benchmarks/RESULTS.md.

Needs root and a writable memory cgroup hierarchy, and the fixture built by `make setup`.

    .venv/bin/python benchmarks/bench_preoom.py [--repeat N] [--speeds 60,20,5]
        [--variants start,calm] [--calm SECONDS] [--limit-mib MIB] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from bench_analysis import update_results

from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive
from oomforensics.capture.client import CaptureSettings, PprofClient
from oomforensics.cli.watch import CACHE, SPOOL_BYTES, watch_once
from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.local.launch import spawn
from oomforensics.local.memory import CgroupMemory, MemoryReading
from oomforensics.local.probes import ChildExit
from oomforensics.local.watcher import Exit, WatchResult
from oomforensics.triggers.model import ContainerRun, TriggerSettings

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "preoom"
FIXTURE = CACHE / "bin" / "leaky"
MiB = 2**20
CHUNK = 64 * 1024  # bytes retained per leak step
# Working-set growth per retained byte of the mapcache leak, measured on this fixture (the
# chunks are large objects: the GC adds little on top). Only used to pick the rate; the
# half-to-full time of every run is measured and reported.
GROWTH_PER_RETAINED = 1.03
FINE_SAMPLE_S = 0.05
TARGET_PERCENT = 80.0
SETTINGS = TriggerSettings()  # what the operator uses (the CRD's defaults)

Say = Callable[[str], None]


# --- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    speed_s: float  # target time from 50 % to 100 % of the limit
    variant: str  # "start" or "calm"
    limit: int

    @property
    def rate(self) -> float:
        """Leak steps per second for the target speed."""
        return self.limit / 2 / self.speed_s / CHUNK / GROWTH_PER_RETAINED

    @property
    def label(self) -> str:
        return f"{self.speed_s:g} s, {self.variant}"


@dataclass(frozen=True)
class CaptureRow:
    reason: str
    percent: float
    decided_at: float
    durable_at: float
    latency_s: float
    spooled: bool
    size: int  # bytes stored (profiles and manifest)


@dataclass
class Run:
    plan: Plan
    index: int
    calm_s: float = 0.0  # seconds of calm before the leak (calm variant)
    spawned_at: float = math.nan
    leak_at: float = math.nan  # the leaking process announced itself
    death_at: float = math.nan  # our asyncio reaper saw the child die
    noticed_at: float = math.nan  # the engine first saw it gone (empty cgroup or exit probe)
    exit_code: int | None = None
    oom_killed: bool = False  # the engine's verdict
    oom_kills: int = 0  # the cgroup's oom_kill counter moved by this much
    evidence: str = ""
    timed_out: bool = False
    captures: list[CaptureRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    fine: list[tuple[float, int]] = field(default_factory=list)  # (time, working set)
    engine: list[tuple[float, int]] = field(default_factory=list)  # the engine's samples

    def first_at(self, percent: float) -> float:
        """When the fine sampler first saw the working set at `percent` % of the limit."""
        level = self.plan.limit * percent / 100
        return next((t for t, ws in self.fine if ws >= level), math.nan)

    def notice(self, at: float) -> None:
        if math.isnan(self.noticed_at):
            self.noticed_at = at

    @property
    def pre_oom(self) -> CaptureRow | None:
        """The last capture durable before the process died."""
        before = [c for c in self.captures if c.durable_at < self.death_at]
        return before[-1] if before else None

    @property
    def half_to_full_s(self) -> float:
        return self.death_at - self.first_at(50)

    @property
    def leak_to_kill_s(self) -> float:
        return self.death_at - self.leak_at

    @property
    def first_high(self) -> CaptureRow | None:
        """The first capture triggered at >= 80 % of the limit."""
        return next((c for c in self.captures if c.percent >= TARGET_PERCENT), None)

    @property
    def kept(self) -> CaptureRow | None:
        """The first capture at >= 80 % that was durable before the process died."""
        return next(
            (
                c
                for c in self.captures
                if c.percent >= TARGET_PERCENT and c.durable_at < self.death_at
            ),
            None,
        )

    @property
    def killed_by_kernel(self) -> bool:
        return self.oom_kills > 0 and self.exit_code == 137 and not self.timed_out

    @property
    def engine_samples_in_last_half(self) -> int:
        half = self.first_at(50)
        return sum(1 for t, _ in self.engine if half <= t < self.death_at)

    @property
    def engine_after_leak(self) -> list[float]:
        """Seconds after the leak began of the engine's samples until the kill."""
        return [t - self.leak_at for t, _ in self.engine if self.leak_at <= t < self.death_at]

    @property
    def calm_gap_s(self) -> float:
        """The engine's sampling interval at the leak's start: the samples either side."""
        before = [t for t, _ in self.engine if t < self.leak_at]
        after = [t for t, _ in self.engine if t >= self.leak_at]
        end = after[0] if after else self.noticed_at
        return end - before[-1] if before else math.nan

    def summary(self) -> str:
        caps = ", ".join(
            f"{c.reason} {c.percent:.0f}% {c.latency_s * 1000:.0f} ms"
            + ("" if c.durable_at < self.death_at else " (after the kill)")
            for c in self.captures
        )
        kill = (
            "OOM kill"
            if self.killed_by_kernel
            else ("timed out" if self.timed_out else f"exit {self.exit_code}, no OOM kill")
        )
        calm = f" (calm {self.calm_s:.1f} s)" if self.plan.variant == "calm" else ""
        after = ", ".join(f"+{t:.1f}" for t in self.engine_after_leak)
        return (
            f"{self.plan.label}{calm} #{self.index + 1}: 50->100 % in "
            f"{self.half_to_full_s:.1f} s, "
            f"leak start to kill {self.leak_to_kill_s:.1f} s, {kill}; "
            f"engine samples after the leak began (s): {after or 'none'}; "
            f"captures: {caps or 'none'}"
            + (f"; failures: {len(self.failures)}" if self.failures else "")
        )


class RecordingMemory:
    """The engine's memory source, noting what it read and when."""

    def __init__(self, inner: CgroupMemory, run: Run) -> None:
        self.inner, self.run = inner, run
        self.description = inner.description

    async def read(self) -> MemoryReading | None:
        at = time.time()
        reading = await self.inner.read()
        if reading is None:
            self.run.notice(at)
        else:
            self.run.engine.append((at, reading.working_set))
        return reading


class RecordingProbe:
    """The engine's exit probe, noting when it first reported the exit."""

    def __init__(self, inner: ChildExit, run: Run) -> None:
        self.inner, self.run = inner, run

    async def __call__(self) -> Exit | None:
        at = time.time()
        status = await self.inner()
        if status is not None:
            self.run.notice(at)
        return status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Runs the fixture calm on PORT for CALM seconds, then replaces it with the leaking one on the
# same port; `exec` keeps the PID the watcher and the reaper know.
_CALM_SCRIPT = (
    '"$1" -mode mapcache -listen "127.0.0.1:$2" -rate 1 -chunk "$5" -max-bytes 1 & calm=$!; '
    'sleep "$3"; kill "$calm"; wait "$calm"; '
    'exec "$1" -mode mapcache -listen "127.0.0.1:$2" -rate "$4" -chunk "$5"'
)


def command(plan: Plan, fixture: Path, calm_s: float) -> list[str]:
    rate = f"{plan.rate:.3f}"
    if plan.variant == "start":
        return [str(fixture), "-mode", "mapcache", "-rate", rate, "-chunk", str(CHUNK)]
    port = str(free_port())
    calm = f"{calm_s:.2f}"
    return ["/bin/sh", "-c", _CALM_SCRIPT, "sh", str(fixture), port, calm, rate, str(CHUNK)]


async def sample_fine(cgroup: MemoryCgroup, run: Run, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(CgroupError, ValueError):
            run.fine.append((time.time(), cgroup.working_set()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FINE_SAMPLE_S)


async def read_announcements(process: asyncio.subprocess.Process, run: Run) -> None:
    """Later LISTENING lines on stdout: the leaking process of the calm variant starting."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if line.startswith(b"LISTENING "):
            run.leak_at = time.time()


async def reap(process: asyncio.subprocess.Process, run: Run) -> None:
    await process.wait()
    run.death_at = time.time()


def kill_leftovers(cgroup: MemoryCgroup) -> None:
    """SIGKILL what this run started and is still in its cgroup (a run that timed out)."""
    with contextlib.suppress(CgroupError):
        for pid in cgroup.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def remove_cgroup(cgroup: MemoryCgroup) -> None:
    for _ in range(50):
        try:
            cgroup.remove()
            return
        except CgroupError:
            kill_leftovers(cgroup)
            await asyncio.sleep(0.1)
    cgroup.remove()


def stored_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def one_run(
    plan: Plan, index: int, calm_s: float, fixture: Path, work: Path, say: Say
) -> Run:
    run = Run(plan, index, calm_s if plan.variant == "calm" else 0.0)
    name = f"oomf-bench-preoom-{os.getpid()}-{plan.speed_s:g}s-{plan.variant}-{index}"
    cgroup = MemoryCgroup.create_child(name, plan.limit)
    kills_before = cgroup.oom_kills()
    archive_dir = work / "archive"
    archive = Archive.from_url(archive_dir.as_uri())
    spool = Spool(work / f"spool-{name}", SPOOL_BYTES)
    pod = f"leaky-{plan.speed_s:g}s-{plan.variant}"
    container_run = ContainerRun("local", pod, f"local-{pod}", "main", index)
    stop = asyncio.Event()
    timeout = run.calm_s + 4 * plan.speed_s + 60
    result: WatchResult | None = None
    try:
        async with (
            spawn(command(plan, fixture, run.calm_s), cgroup) as (process, base),
            PprofClient(CaptureSettings()) as client,
        ):
            run.spawned_at = time.time()
            if plan.variant == "start":
                run.leak_at = run.spawned_at
            tasks = [
                asyncio.create_task(sample_fine(cgroup, run, stop)),
                asyncio.create_task(read_announcements(process, run)),
                asyncio.create_task(reap(process, run)),
            ]
            try:
                result = await asyncio.wait_for(
                    watch_once(
                        base + "/debug/pprof",
                        RecordingMemory(CgroupMemory(cgroup), run),
                        plan.limit,
                        "bench-preoom",
                        container_run,
                        archive,
                        spool,
                        client,
                        RecordingProbe(ChildExit(process, cgroup), run),
                        SETTINGS,
                    ),
                    timeout,
                )
            except TimeoutError:
                run.timed_out = True
                say(f"  {plan.label} #{index + 1}: no kill within {timeout:g} s, stopping it")
                kill_leftovers(cgroup)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tasks[2], 10)
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stop.set()
        kill_leftovers(cgroup)
        run.oom_kills = cgroup.oom_kills() - kills_before
        await remove_cgroup(cgroup)
    if result is not None:
        if result.exit is not None:
            run.exit_code = result.exit.exit_code
            run.oom_killed = result.exit.oom_killed
            run.evidence = result.exit.evidence
        run.failures = list(result.failures)
        run.captures = [
            CaptureRow(
                reason=c.key.reason,
                percent=c.percent_of_limit if c.percent_of_limit is not None else math.nan,
                decided_at=c.decided_at,
                durable_at=c.durable_at,
                latency_s=c.latency,
                spooled=c.spooled,
                size=stored_size(archive_dir / c.path),
            )
            for c in result.captures
        ]
    return run


# --- statistics and tables -------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); nan for no values."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def _s(x: float, digits: int = 1) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f} s"


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:,.0f}"


def _kib(x: float) -> str:
    return "-" if math.isnan(x) else f"{x / 1024:,.0f} KiB"


def _share(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f} %)" if total else "-"


@dataclass(frozen=True)
class Row:
    leak: str
    runs: str
    half_to_full: str
    leak_to_kill: str
    calm_gap: str
    engine_samples: str
    kept: str
    stored_at_all: str
    first_high: str
    headroom: str
    pre_oom: str
    latency: str
    oom: str
    size: str


HEADERS = Row(
    leak="leak (target 50->100 %), start",
    runs="runs",
    half_to_full="measured 50->100 %: median (min-max)",
    leak_to_kill="leak start -> kill, median",
    calm_gap="engine's sampling interval across the leak's start, median",
    engine_samples="engine samples in 50->100 %, median (min-max)",
    kept="**>= 80 % snapshot durable before the kill**",
    stored_at_all=">= 80 % snapshot stored at all",
    first_high="first >= 80 % capture, % of limit, median",
    headroom="kill - durable of that snapshot, median (min)",
    pre_oom="last snapshot durable before the kill, % of limit: median (min-max)",
    latency="trigger -> durable, ms: p50 / p95 / p99 (n captures)",
    oom="kernel OOM kill (oom_kill counter, exit 137)",
    size="capture size: median / max",
)


def row(plan: Plan, runs: list[Run]) -> Row:
    n = len(runs)
    halves = [r.half_to_full_s for r in runs]
    kept = [r.kept for r in runs]
    durable = [c for c in kept if c is not None]
    margins = [r.death_at - c.durable_at for r, c in zip(runs, kept, strict=True) if c is not None]
    highs = [r.first_high for r in runs]
    latencies = [c.latency_s for r in runs for c in r.captures]
    sizes = [float(c.size) for r in runs for c in r.captures]
    samples = [float(r.engine_samples_in_last_half) for r in runs]
    pre = [c.percent for r in runs if (c := r.pre_oom) is not None]
    clean = [h for h in halves if not math.isnan(h)]
    return Row(
        leak=f"{plan.speed_s:g} s, {plan.variant}"
        + (
            f" (calm {min(r.calm_s for r in runs):.1f}-{max(r.calm_s for r in runs):.1f} s first)"
            if plan.variant == "calm"
            else ""
        ),
        runs=str(n),
        half_to_full=f"{_s(median(halves))} ({_s(min(clean))}-{_s(max(clean))})" if clean else "-",
        leak_to_kill=_s(median([r.leak_to_kill_s for r in runs])),
        calm_gap=_s(median([r.calm_gap_s for r in runs])) if plan.variant == "calm" else "-",
        engine_samples=f"{median(samples):g} ({min(samples):g}-{max(samples):g})",
        kept=_share(len(durable), n),
        stored_at_all=_share(sum(1 for h in highs if h is not None), n),
        first_high=(
            f"{median([h.percent for h in highs if h is not None]):.1f} %"
            if any(h is not None for h in highs)
            else "-"
        ),
        headroom=f"{_s(median(margins), 2)} ({_s(min(margins), 2)})" if margins else "-",
        pre_oom=f"{median(pre):.1f} % ({min(pre):.1f}-{max(pre):.1f} %)" if pre else "-",
        latency=(
            f"{_ms(percentile(latencies, 50))} / {_ms(percentile(latencies, 95))} / "
            f"{_ms(percentile(latencies, 99))} ({len(latencies)})"
        ),
        oom=_share(sum(1 for r in runs if r.killed_by_kernel), n),
        size=f"{_kib(median(sizes))} / {_kib(max(sizes, default=math.nan))}",
    )


def table(groups: dict[Plan, list[Run]]) -> list[str]:
    """Transposed: one column per speed and variant, one row per measure."""
    rows = [row(plan, runs) for plan, runs in groups.items()]
    names = [f.name for f in fields(Row)]
    lines = [
        "| " + " | ".join(["measure", *(r.leak for r in rows)]) + " |",
        "| --- |" + " ---: |" * len(rows),
    ]
    for name in names[1:]:
        cells = [getattr(HEADERS, name), *(getattr(r, name) for r in rows)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def reasons(groups: dict[Plan, list[Run]]) -> str:
    counts: dict[str, int] = {}
    for runs in groups.values():
        for r in runs:
            for c in r.captures:
                counts[c.reason] = counts.get(c.reason, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


# --- reporting -------------------------------------------------------------------------------


def machine(fixture: Path, cgroup_version: int) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    go = shutil.which("go")
    built_with = "unknown Go"
    if go is not None:
        out = subprocess.run([go, "version", str(fixture)], capture_output=True, text=True)
        if out.returncode == 0:
            built_with = out.stdout.strip().rsplit(" ", 1)[-1]
    return {
        "cpu": model,
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "os": f"{platform.system()} {platform.release()}, cgroup v{cgroup_version}",
        "python": platform.python_version(),
        "fixture": f"{fixture.name} built with {built_with}",
    }


def settings_text() -> str:
    s = SETTINGS
    return (
        f"sample_interval {s.sample_interval:g} s, min_sample_interval "
        f"{s.min_sample_interval:g} s, thresholds {'/'.join(map(str, s.thresholds))} %, "
        f"horizon {s.horizon:g} s, fit_window {s.fit_window:g} s, cooldown {s.cooldown:g} s, "
        f"interval {s.interval:g} s (never due within a run), baseline {s.baseline}"
    )


def section(
    groups: dict[Plan, list[Run]], args: argparse.Namespace, fixture: Path, version: int
) -> str:
    info = machine(fixture, version)
    plans = list(groups)
    rates = "; ".join(
        f"{p.speed_s:g} s: `-rate {p.rate:.2f} -chunk {CHUNK}`"
        for p in plans
        if p.variant == plans[0].variant
    )
    runs = [r for rs in groups.values() for r in rs]
    failures = sum(len(r.failures) for r in runs)
    spooled = sum(1 for r in runs for c in r.captures if c.spooled)
    lines = [
        f"<!-- bench:{SECTION} -->",
        "## Pre-OOM snapshots of a fast leak",
        "",
        f"`.venv/bin/python benchmarks/bench_preoom.py --repeat {args.repeat} "
        f"--speeds {args.speeds} --variants {args.variants}`, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}; "
        f"Python {info['python']}; {info['fixture']}.",
        "",
        f"Each run: the leaky fixture (`-mode mapcache`) in a fresh child memory cgroup limited "
        f"to {args.limit_mib} MiB (no swap), watched by `watch_once` (the operator's trigger "
        "engine, capture client with default CaptureSettings, a spool and a `file://` archive "
        "in a temp dir) until the kernel OOM-kills it. Trigger settings: the operator's "
        f"defaults, `TriggerSettings()`: {settings_text()}. Leak rates, picked for the target "
        f"half-to-full time: {rates}. Runs are interleaved ({args.repeat} per column).",
        "",
        "Variants: *start*: the leak begins when the process starts and the watch starts "
        f"with it. *calm*: the fixture first serves calm (same binary and mode, `-max-bytes 1`, "
        "on a fixed port), then a shell wrapper stops it and execs the leaking fixture on the "
        "same port and PID, in the same cgroup (the fixture cannot delay its own leak): the "
        "engine is at its relaxed sampling interval when the leak begins. The calm lasts "
        f"{args.calm:g} s + (i + 0.5)/{args.repeat} x {SETTINGS.sample_interval:g} s in run i, "
        "so the leak starts at phases spread evenly over one sampling interval.",
        "",
        *table(groups),
        "",
        "- *>= 80 % snapshot durable before the kill*: a capture triggered by a sample at "
        ">= 80 % of the limit whose files and manifest were stored (archive, or the local "
        "spool) before the process died. *Stored at all* also counts a capture whose heap "
        "profile was fetched before the kill but stored after it.",
        "- Kill time: when this benchmark's asyncio reaper saw the child exit (a few ms after "
        "the kernel's SIGKILL). The engine itself notices when "
        "its current wait for the next sample ends (median "
        f"{_s(median([r.noticed_at - r.death_at for r in runs]), 2)}, max "
        f"{_s(max(r.noticed_at - r.death_at for r in runs), 2)} later here): nothing sets "
        "`Watcher.exited`. Half-to-full: first 50 ms cgroup sample at >= 50 % of the limit to "
        "the kill.",
        f"- Load average (1 min) when the benchmark started and ended: {args.load_start:.2f}, "
        f"{os.getloadavg()[0]:.2f}; other work on the machine was not controlled.",
        "- Latency: `Capture.latency`, from the triggering sample to the snapshot being durable "
        "(capture of heap, heap?debug=1 and goroutine profiles, then store); nearest-rank "
        "percentiles over every capture of the column (baseline and predicted included). "
        "Durable for `file://` means renamed into place: obstore's local store does not fsync.",
        f"- Capture reasons over all runs: {reasons(groups)}. Captures that failed: {failures}; "
        f"spooled: {spooled}. Capture size: profiles plus manifest as stored.",
        "",
        "<details><summary>Every run</summary>",
        "",
        *(f"- {r.summary()}" for r in runs),
        "",
        "</details>",
        f"<!-- /bench:{SECTION} -->",
    ]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per speed and variant")
    parser.add_argument("--speeds", default="60,20,5", help="target 50->100 %% times, seconds")
    parser.add_argument("--variants", default="start,calm", help="start, calm or both")
    parser.add_argument(
        "--calm", type=float, default=20.0, help="least calm seconds (calm variant; + a phase)"
    )
    parser.add_argument("--limit-mib", type=int, default=128, help="cgroup memory limit, MiB")
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the leaky binary")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.speed_list = [float(s) for s in args.speeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--speeds {args.speeds!r}: expected numbers separated by commas")
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not set(args.variant_list) <= {"start", "calm"} or not args.variant_list:
        parser.error("--variants: start, calm or start,calm")
    if args.repeat < 1 or not args.speed_list or min(args.speed_list) <= 0:
        parser.error("--repeat and --speeds must be positive")
    return args


async def measure(args: argparse.Namespace, say: Say) -> dict[Plan, list[Run]]:
    limit = args.limit_mib * MiB
    plans = [
        Plan(speed, variant, limit) for speed in args.speed_list for variant in args.variant_list
    ]
    groups: dict[Plan, list[Run]] = {plan: [] for plan in plans}
    with tempfile.TemporaryDirectory(prefix="bench-preoom-") as folder:
        for index in range(args.repeat):
            for plan in plans:
                say(f"run {index + 1}/{args.repeat}: {plan.label}, -rate {plan.rate:.2f}")
                # Calm runs end their calm at phases spread evenly over one relaxed sampling
                # interval: where the leak starts relative to the engine's samples decides
                # how many samples it gets, so a fixed calm would test one phase only.
                calm = args.calm + SETTINGS.sample_interval * (index + 0.5) / args.repeat
                run = await one_run(plan, index, calm, args.fixture, Path(folder), say)
                groups[plan].append(run)
                say("  " + run.summary())
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if not args.fixture.is_file():
        raise SystemExit(f"{args.fixture}: fixture not built; run `make setup` first")
    try:
        probe = MemoryCgroup.create_child(f"oomf-bench-preoom-{os.getpid()}-probe", MiB * 64)
    except CgroupError as exc:
        raise SystemExit(f"this benchmark needs a memory cgroup: {exc}") from None
    version = probe.version
    probe.remove()
    args.load_start = os.getloadavg()[0]
    groups = asyncio.run(measure(args, say))
    print("\n".join(table(groups)).replace("**", ""))
    if not args.no_write:
        update_results(args.results, SECTION, section(groups, args, args.fixture, version))
        say(f"Updated {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
