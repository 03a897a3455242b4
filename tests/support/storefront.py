"""Run the ``storefront`` Go fixture (tests/fixtures/go/storefront) and take series of snapshots.

The storefront is a noisy service (handlers, JSON, a bounded LRU, pooled buffers, a worker
pool, an in-process load generator, ~20 MB/s of churn); ``-mode`` adds one behaviour on top.
Built by ``hack/build-go-fixtures.sh`` (with GOEXPERIMENT=goroutineleakprofile, so it serves
/debug/pprof/goroutineleak) into ``${OOMF_CACHE:-~/.cache/oomforensics}/bin/storefront``.

    series = take_series("slowleak", tmp_path)   # five snapshot directories, in time order
"""

from __future__ import annotations

import urllib.error
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.support.leaky import CACHE_DIR, LeakyService
from tests.support.snapshots import num_gc, take_snapshot
from tests.support.waiting import eventually

STOREFRONT_BIN: Path = CACHE_DIR / "bin" / "storefront"

MODES = (
    "quiet",
    "slowleak",
    "cachefill",
    "poolramp",
    "batch",
    "goroutines",
    "lockwait",
    "transport",
    "seed",
    "internal",
    "serverconns",
)
# Seconds since the service started at which the snapshots are taken. The first lies inside
# the warm-up (the cache still filling, the pool still ramping, the batch not yet run), as the
# operator's baseline at container start does.
SNAPSHOT_AT = (2.0, 7.0, 12.0, 17.0, 22.0)
# A heap profile at 32 KiB resolves a 256 KiB/s leak within these 20 s (see docs/verdict.md);
# the noise and the leak rates stay those of a real service.
MEMPROFILERATE = 32 * 1024
MODE_ARGS: dict[str, tuple[str, ...]] = {
    "slowleak": ("-rate", "16", "-leak-bytes", "16384"),
    "internal": ("-rate", "16", "-leak-bytes", "16384"),
    "goroutines": ("-rate", "10"),
    "lockwait": ("-rate", "10"),
    # The HTTP modes profile at 2-4 KiB: what ties a leaking connection to the function making
    # the call is that function's small request allocations (about 1.4 KiB per call), which
    # 32 KiB cannot resolve in 20 s.
    "transport": ("-rate", "5", "-memprofilerate", "4096"),
    "seed": ("-rate", "30", "-memprofilerate", "2048"),
    "serverconns": ("-rate", "5"),
}


@dataclass(frozen=True)
class Series:
    mode: str
    snapshots: tuple[Path, ...]


def storefront(mode: str, *extra: str) -> LeakyService:
    args = ("-memprofilerate", str(MEMPROFILERATE), *MODE_ARGS.get(mode, ()), *extra)
    return LeakyService(mode, *args, binary=STOREFRONT_BIN)


def uptime(svc: LeakyService) -> float:
    return svc.metrics()["storefront_uptime_seconds"]


def take_series(mode: str, out: Path, at: Sequence[float] = SNAPSHOT_AT) -> Series:
    """Snapshots at the given uptimes, each after two more completed GC cycles (the heap
    profile describes the heap as of the last GC)."""
    taken = []
    with storefront(mode) as svc:
        for index, moment in enumerate(at):
            gcs = num_gc(svc)
            eventually(lambda m=moment: uptime(svc) >= m, 60, f"{mode}: uptime {moment}s")
            eventually(lambda g=gcs: num_gc(svc) >= g + 2, 60, f"{mode}: two GC cycles")
            directory = take_snapshot(svc, out / f"{index + 1}")
            leak = _goroutine_leak_profile(svc)
            if leak is not None:
                (directory / "goroutineleak.txt").write_bytes(leak)
            taken.append(directory)
    return Series(mode, tuple(taken))


def take_all(out: Path, modes: Sequence[str] = MODES, parallel: int = 4) -> dict[str, Series]:
    """Every mode's series, `parallel` services at a time (each is a separate process)."""
    with ThreadPoolExecutor(parallel) as pool:
        futures = {mode: pool.submit(take_series, mode, out / mode) for mode in modes}
        return {mode: future.result() for mode, future in futures.items()}


def _goroutine_leak_profile(svc: LeakyService) -> bytes | None:
    try:
        return svc.get("/debug/pprof/goroutineleak?debug=1")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
