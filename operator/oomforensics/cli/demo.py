"""`oomforensics demo`: a real leak, a real kernel OOM kill, and the evidence that survives it.

Starts the leaking Go fixture (an HTTPS client that never closes 403 response bodies) in a
memory cgroup with a limit, watches it with the same engine the operator uses, stores the
snapshots in `./forensics`, lets the kernel kill it at the limit, then shows the snapshots,
the last one before the kill, and the verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from oomforensics.analysis.units import format_bytes
from oomforensics.archive.spool import Spool
from oomforensics.capture.client import CaptureSettings, PprofClient
from oomforensics.cli.errors import UsageError
from oomforensics.cli.watch import CACHE, SPOOL_BYTES, open_archive, report, watch_once
from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.local.launch import KillAtLimit, StandInExit, spawn
from oomforensics.local.memory import CgroupMemory, MemorySource, ProcMemory
from oomforensics.local.probes import ChildExit
from oomforensics.local.session import next_run
from oomforensics.local.watcher import ExitProbe
from oomforensics.quantity import parse_memory
from oomforensics.triggers.model import TriggerSettings

FIXTURE = CACHE / "bin" / "leaky"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo", help="run a leaking Go service into a real OOM kill and explain it"
    )
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the leaky fixture binary")
    parser.add_argument("--mode", default="tls403", help="fixture leak mode (default tls403)")
    parser.add_argument("--limit", default="200Mi", help="memory limit (default 200Mi)")
    parser.add_argument("--rate", default="60", help="fixture leak steps per second")
    parser.add_argument("--store", default=None, help="archive URL (default file://./forensics)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.fixture.is_file():
        raise UsageError(f"{args.fixture}: fixture not built; run `make setup` first")
    return asyncio.run(_demo(args))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _demo(args: argparse.Namespace) -> int:
    limit = parse_memory(args.limit)
    if args.store is None:
        folder = Path("forensics").resolve()
        folder.mkdir(exist_ok=True)
        store = folder.as_uri()
    else:
        store = args.store
    archive = open_archive(store)
    cgroup = _make_cgroup(limit)
    command = [str(args.fixture), "-mode", args.mode, "-rate", args.rate]
    async with spawn(command, cgroup) as (process, base):
        say(f"started {args.fixture.name} -mode {args.mode} (pid {process.pid}) at {base}")
        memory: MemorySource
        probe: ExitProbe
        if cgroup is not None:
            say(
                f"in memory cgroup {cgroup.path} (cgroup v{cgroup.version}) limited to "
                f"{format_bytes(limit)}: the kernel will kill it at the limit"
            )
            memory, probe = CgroupMemory(cgroup), ChildExit(process, cgroup)
        else:
            say(
                f"no memory cgroup could be made: oomforensics itself will SIGKILL the process "
                f"at {format_bytes(limit)} to stand in for the kernel"
            )
            memory = KillAtLimit(ProcMemory(process.pid), process, limit)
            probe = StandInExit(process)
        run = await next_run(archive, "demo", f"leaky-{args.mode}")
        settings = TriggerSettings(
            interval=15.0,
            thresholds=(80, 90, 95),
            horizon=20.0,
            sample_interval=2.0,
            min_sample_interval=0.5,
            cooldown=5.0,
        )
        exited = asyncio.Event()
        reaper = asyncio.create_task(_set_on_exit(process, exited))
        async with PprofClient(CaptureSettings(read_timeout=10.0)) as client:
            result = await watch_once(
                base + "/debug/pprof",
                memory,
                limit,
                "demo",
                run,
                archive,
                Spool(CACHE / "spool", SPOOL_BYTES),
                client,
                probe,
                settings,
                exited,
            )
        reaper.cancel()
    if cgroup is not None:
        with contextlib.suppress(CgroupError):
            cgroup.remove()
    await report(result, archive, limit)
    print()
    print(
        f"The evidence is kept in {store}; compare any two snapshots with "
        "`oomforensics diff DIR1 DIR2`."
    )
    return 0


async def _set_on_exit(process: asyncio.subprocess.Process, exited: asyncio.Event) -> None:
    await process.wait()
    exited.set()


def _make_cgroup(limit: int) -> MemoryCgroup | None:
    try:
        return MemoryCgroup.create_child(f"oomforensics-demo-{os.getpid()}", limit)
    except CgroupError as exc:
        say(f"note: {exc}")
        return None
