"""`oomforensics watch URL`: the operator's engine against one local process."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from oomforensics.analysis.units import format_bytes
from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive
from oomforensics.capture.client import CaptureSettings, PprofClient
from oomforensics.cli.errors import UsageError
from oomforensics.cli.progress import LineReporter
from oomforensics.cli.render import render_verdict
from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.local.memory import CgroupMemory, MemorySource, MetricsMemory, ProcMemory
from oomforensics.local.probes import CgroupExit
from oomforensics.local.session import end_of_run, evidence, next_run
from oomforensics.local.watcher import ExitProbe, Watcher, WatchResult
from oomforensics.quantity import InvalidQuantity, parse_memory
from oomforensics.triggers.model import ContainerRun, TriggerSettings

CACHE = Path(os.environ.get("OOMF_CACHE", Path.home() / ".cache" / "oomforensics"))
SPOOL_BYTES = 512 * 2**20


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "watch",
        help="watch one local Go process, snapshot it before the limit, explain an OOM kill",
        description=(
            "Sample a process's memory, capture heap, heap?debug=1 and goroutine profiles at "
            "intervals and before the limit, store them, and when the process dies say whether "
            "the kernel OOM-killed it and what grew."
        ),
    )
    parser.add_argument("url", metavar="URL", help="the pprof endpoint, e.g. http://127.0.0.1:6060")
    parser.add_argument("--limit", help="memory limit, e.g. 256Mi (default: the cgroup's limit)")
    parser.add_argument("--store", required=True, help="archive URL: file://, s3://, gs://, az://")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pid", type=int, help="read the process's RSS from /proc")
    source.add_argument("--cgroup", type=Path, help="read the working set of this memory cgroup")
    source.add_argument("--metrics-url", help="read process_resident_memory_bytes from /metrics")
    add_trigger_options(parser)
    parser.add_argument("--name", default="watch", help="investigation name in the archive")
    parser.add_argument("--spool", type=Path, default=CACHE / "spool", help="local spool dir")
    parser.set_defaults(run=run)


def add_trigger_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=600.0, help="periodic snapshots, s")
    parser.add_argument("--thresholds", default="80,90,95", help="%% of limit, comma separated")
    parser.add_argument(
        "--horizon",
        type=float,
        default=120.0,
        help="capture when the limit is predicted within this many seconds",
    )
    parser.add_argument("--sample-interval", type=float, default=5.0, help="seconds")


def trigger_settings(args: argparse.Namespace) -> TriggerSettings:
    try:
        thresholds = tuple(int(t) for t in args.thresholds.split(",") if t.strip())
        return TriggerSettings(
            interval=args.interval,
            thresholds=thresholds,
            horizon=args.horizon,
            sample_interval=args.sample_interval,
            min_sample_interval=min(0.5, args.sample_interval),
            cooldown=min(30.0, args.interval / 2) if args.interval else 30.0,
        )
    except ValueError as exc:
        raise UsageError(f"invalid trigger settings: {exc}") from None


def pprof_base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{url}: expected an http(s) URL of a Go pprof endpoint")
    path = parts.path.rstrip("/")
    if not path.endswith("/debug/pprof"):
        path += "/debug/pprof"
    return f"{parts.scheme}://{parts.netloc}{path}"


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_watch(args))


async def _watch(args: argparse.Namespace) -> int:
    base = pprof_base(args.url)
    cgroup = MemoryCgroup.at(args.cgroup) if args.cgroup else None
    limit = _limit(args.limit, cgroup)
    settings = trigger_settings(args)
    archive = open_archive(args.store)
    origin = base.removesuffix("/debug/pprof")
    async with httpx.AsyncClient() as http, PprofClient(CaptureSettings()) as client:
        memory: MemorySource
        if cgroup is not None:
            memory = CgroupMemory(cgroup)
        elif args.pid is not None:
            memory = ProcMemory(args.pid)
        else:
            memory = MetricsMemory(args.metrics_url or origin + "/metrics", http)
        pod = f"{socket.gethostname()}-{urlsplit(origin).port or 80}"
        run = await next_run(archive, args.name, pod)
        probe: ExitProbe = CgroupExit(cgroup, args.pid) if cgroup or args.pid else _never
        result = await watch_once(
            base,
            memory,
            limit,
            args.name,
            run,
            archive,
            Spool(args.spool, SPOOL_BYTES),
            client,
            probe,
            settings,
        )
    await report(result, archive, limit)
    return 0


async def watch_once(
    base: str,
    memory: MemorySource,
    limit: int | None,
    investigation: str,
    run: ContainerRun,
    archive: Archive,
    spool: Spool,
    client: PprofClient,
    probe: ExitProbe,
    settings: TriggerSettings,
    exited: asyncio.Event | None = None,
) -> WatchResult:
    """Watch until the target is gone; `exited`, when the caller can see the process end
    (its own child), ends the wait for the next sample at once."""
    reporter = LineReporter()
    reporter._say(
        f"watching {base}: memory from {memory.description}"
        + (f", limit {format_bytes(limit)}" if limit else ", no limit")
        + f"; snapshots to {archive.url}"
    )
    watcher = Watcher(
        base, memory, limit, investigation, run, archive, spool, client, probe, settings, reporter
    )
    if exited is not None:
        watcher.exited = exited
    result = await watcher.run()
    await spool.drain(archive)
    if result.exit is not None and result.captures:
        record = end_of_run(result, run, limit)
        await archive.put_run_file(investigation, run, record.file_name, record.to_bytes())
    return result


async def report(result: WatchResult, archive: Archive, limit: int | None) -> None:
    print()
    print(f"snapshots ({len(result.captures)}):")
    for c in result.captures:
        pct = f"{c.percent_of_limit:5.1f}%" if c.percent_of_limit is not None else "     -"
        print(
            f"  {c.key.captured_at:%H:%M:%S}  {c.key.reason:<14} {pct} of limit  "
            f"working set {format_bytes(c.working_set)}"
        )
    if result.exit is not None:
        print(f"end: {result.exit.evidence}")
    if result.pre_oom is not None:
        print(f"last snapshot before the kill: {archive.url.rstrip('/')}/{result.pre_oom.path}")
    found = await evidence(archive, result)
    if found is None:
        print("fewer than two complete snapshots: nothing to compare")
        return
    print()
    print(
        f"compared {found.baseline.key.name} with {found.last.key.name}"
        + (
            " (the pre-OOM snapshot holds only the heap profile: the process died while it "
            "was being taken)"
            if found.partial_pre_oom
            else ""
        )
    )
    print(render_verdict(found.comparison))


async def _never() -> None:
    return None


def _limit(text: str | None, cgroup: MemoryCgroup | None) -> int | None:
    if text is not None:
        try:
            return parse_memory(text)
        except InvalidQuantity as exc:
            raise UsageError(str(exc)) from None
    if cgroup is not None:
        try:
            return cgroup.limit()
        except CgroupError as exc:
            raise UsageError(str(exc)) from None
    raise UsageError("--limit is required unless --cgroup has a memory limit")


def open_archive(url: str) -> Archive:
    try:
        return Archive.from_url(url)
    except ValueError as exc:
        raise UsageError(f"--store {url}: {exc}") from None
