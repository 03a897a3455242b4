"""Real snapshots of the real leaking Go service, one set per leak mode, shared by the suite."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.leaky import LeakyService
from tests.support.snapshots import take_snapshot, wait_for_progress

MODES = ["tls403", "mapcache", "goroutines", "mmap", "bufferlog", "steady"]


@dataclass(frozen=True)
class ModeSnapshots:
    mode: str
    base: Path
    middle: Path
    new: Path


@pytest.fixture(scope="session", params=MODES)
def mode_snapshots(request, tmp_path_factory) -> ModeSnapshots:
    """Three snapshots: after warm-up, then twice more, each after leak steps and GC cycles.

    The heap profile only moves at GC, so every wait includes two completed cycles.
    """
    mode = request.param
    out = tmp_path_factory.mktemp(mode)
    with LeakyService(mode, "-rate", "100", "-max-bytes", str(256 * 2**20)) as svc:
        wait_for_progress(svc, steps=5, gcs=1)
        base = take_snapshot(svc, out / "1-base")
        wait_for_progress(svc, steps=40, gcs=2)
        middle = take_snapshot(svc, out / "2-middle")
        wait_for_progress(svc, steps=40, gcs=2)
        new = take_snapshot(svc, out / "3-new")
    return ModeSnapshots(mode, base, middle, new)
