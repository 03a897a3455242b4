"""Snapshots as the capture side would hand them to the archive, for the archive's tests."""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oomforensics.archive import (
    GOROUTINE_TEXT,
    HEAP_PROFILE,
    HEAP_TEXT,
    Manifest,
    SnapshotKey,
    build_manifest,
)
from oomforensics.triggers.model import ContainerRun

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
POD_UID = "6f1c2a9e-0d7b-4a51-9c1e-3b8e2f0a7d44"
TEXT_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "text"
HEAP_TEXT_BYTES = (TEXT_FIXTURES / "heap-go1.19.txt").read_bytes()
GOROUTINE_TEXT_BYTES = (TEXT_FIXTURES / "goroutine-go1.19.txt").read_bytes()


@dataclass(frozen=True)
class Snapshot:
    key: SnapshotKey
    files: dict[str, bytes]
    manifest: Manifest


def snapshot(
    minute: float = 0,
    reason: str = "periodic",
    *,
    pod: str = "checkout-7d9f",
    container: str = "app",
    run: int = 0,
    namespace: str = "shop",
    investigation: str = "checkout-leak",
    profile_bytes: int = 2000,
    heap_inuse: int | None = None,
    pod_uid: str = POD_UID,
) -> Snapshot:
    """One capture `minute` minutes after T0. The heap profile is incompressible noise of
    about `profile_bytes`, so sizes are predictable; `heap_inuse` goes into memstats."""
    key = SnapshotKey(
        investigation=investigation,
        container_run=ContainerRun(namespace, pod, pod_uid, container, run),
        captured_at=T0 + timedelta(minutes=minute),
        reason=reason,
    )
    noise = random.Random(key.path()).randbytes(profile_bytes)
    files = {
        HEAP_PROFILE: gzip.compress(noise, mtime=0),
        HEAP_TEXT: HEAP_TEXT_BYTES,
        GOROUTINE_TEXT: GOROUTINE_TEXT_BYTES,
    }
    manifest = build_manifest(
        key,
        files,
        node="node-a",
        image="registry.example/checkout:1.4.2",
        working_set_bytes=400 * 2**20,
        limit_bytes=512 * 2**20,
        rss_bytes=380 * 2**20,
        memstats=None
        if heap_inuse is None
        else {"HeapInuse": heap_inuse, "HeapSys": 2 * heap_inuse},
    )
    return Snapshot(key, files, manifest)
