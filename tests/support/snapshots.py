"""Take real snapshots from a running fixture, laid out as a snapshot directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from oomforensics.pprof.heaptext import parse_heap_text
from tests.support.leaky import LeakyService
from tests.support.waiting import eventually


def num_gc(svc: LeakyService) -> int:
    value = parse_heap_text(svc.get("/debug/pprof/heap?debug=1")).memstats.integer("NumGC")
    return value or 0


def leak_steps(svc: LeakyService) -> int:
    return int(svc.metrics()["leaky_leak_steps_total"])


def wait_for_progress(svc: LeakyService, steps: int, gcs: int = 2) -> None:
    """Wait until the fixture performed `steps` more leak steps and `gcs` more GC cycles.

    The heap profile describes the heap as of the last completed GC, so waiting for GCs is what
    makes the growth visible in it.
    """
    start_steps, start_gc = leak_steps(svc), num_gc(svc)
    eventually(lambda: leak_steps(svc) >= start_steps + steps, 60, f"{steps} leak steps")
    eventually(lambda: num_gc(svc) >= start_gc + gcs, 60, f"{gcs} GC cycles")


def take_snapshot(svc: LeakyService, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "heap.pb.gz").write_bytes(svc.get("/debug/pprof/heap"))
    (directory / "heap.txt").write_bytes(svc.get("/debug/pprof/heap?debug=1"))
    (directory / "goroutine.txt").write_bytes(svc.get("/debug/pprof/goroutine?debug=1"))
    rss = int(svc.metrics()["process_resident_memory_bytes"])
    manifest = {
        "capturedAt": datetime.now(UTC).isoformat(),
        "rssBytes": rss,
        "mode": svc.mode,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
