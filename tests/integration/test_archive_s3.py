"""The archive against a real S3 API (moto's server, in its own venv: hack/moto-server.sh)."""

from __future__ import annotations

import asyncio
import time

import obstore
import pytest
from obstore.store import S3Store

from oomforensics.archive import (
    GOROUTINE_TEXT,
    HEAP_PROFILE,
    Archive,
    ChecksumMismatch,
    Spool,
    StorageUnavailable,
    apply_retention,
)
from oomforensics.archive.retention import RetentionPolicy
from tests.support.moto import MotoServer
from tests.unit.archive.factory import snapshot


@pytest.fixture(scope="module")
def s3():
    with MotoServer() as server:
        yield server


def archive_at(s3: MotoServer, prefix: str) -> Archive:
    return Archive.from_url(s3.archive_url(prefix), credentials=s3.credentials, options=s3.options)


async def test_snapshots_round_trip_through_s3_and_list_by_pod_and_run(s3):
    archive = archive_at(s3, "oomf/round-trip")
    snaps = [
        snapshot(0, "baseline", pod="api-1", heap_inuse=10),
        snapshot(10, "threshold-80", pod="api-1", heap_inuse=80),
        snapshot(20, "baseline", pod="api-1", run=1, heap_inuse=12),
        snapshot(5, "baseline", pod="api-2", heap_inuse=11, profile_bytes=300_000),
    ]
    for snap in snaps:
        path = await archive.put_snapshot(snap.key, snap.files, snap.manifest)
        assert path == snap.key.path()
    api1_run0, api1_threshold, api1_run1, api2 = (s.key for s in snaps)

    assert await archive.list_snapshots() == [api1_run0, api2, api1_threshold, api1_run1]
    assert await archive.list_snapshots(pod="api-1") == [api1_run0, api1_threshold, api1_run1]
    assert await archive.list_snapshots(pod="api-1", run=0) == [api1_run0, api1_threshold]
    assert await archive.list_snapshots("shop", "checkout-leak", "api-2", "app", 0) == [api2]
    assert await archive.list_incomplete() == []
    for snap in snaps:
        await archive.verify(snap.key)
        manifest, files = await archive.read_snapshot(snap.key)
        assert manifest == snap.manifest
        assert files == snap.files  # heap.pb.gz exactly as served

    # another archive under another prefix of the same bucket sees none of it
    assert await archive_at(s3, "oomf/elsewhere").list_snapshots() == []

    deleted = await apply_retention(archive, RetentionPolicy(keep_newest=0), pod="api-1", run=0)
    assert deleted == []  # a baseline and a threshold capture: both evidence
    await archive.delete_snapshot(api1_run1)
    assert await archive.list_snapshots(pod="api-1") == [api1_run0, api1_threshold]
    assert await archive.list_incomplete() == []


async def test_a_file_changed_in_the_bucket_fails_verification(s3):
    archive = archive_at(s3, "oomf/tamper")
    snap = snapshot()
    await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    # someone rewrites goroutine.txt in the bucket, behind the archive's back
    bucket = S3Store(
        s3.bucket,
        endpoint=s3.endpoint,
        region="us-east-1",
        client_options={"allow_http": True},
        **s3.credentials,
    )
    path = f"oomf/tamper/{snap.key.path()}{GOROUTINE_TEXT}"
    await obstore.put_async(bucket, path, b"goroutine profile: total 0\n")

    with pytest.raises(ChecksumMismatch, match=GOROUTINE_TEXT) as caught:
        await archive.verify(snap.key)
    assert caught.value.name == GOROUTINE_TEXT
    assert await archive.read_file(snap.key, HEAP_PROFILE) == snap.files[HEAP_PROFILE]


class PlugPuller(Archive):
    """The archive, with S3 killed the moment one given file has been stored."""

    def __init__(self, base: Archive, s3: MotoServer, after: str) -> None:
        super().__init__(base._store, url=base.url)
        self.s3 = s3
        self.after: str | None = after

    async def _put(self, path: str, data: bytes) -> None:
        await super()._put(path, data)
        if path == self.after:
            self.after = None  # once
            await asyncio.to_thread(self.s3.stop)


async def test_an_s3_outage_mid_capture_loses_and_duplicates_nothing(tmp_path):
    """S3 dies halfway through storing a snapshot and stays down while more are captured; the
    operator restarts; S3 comes back: every snapshot arrives exactly once and verifies."""
    with MotoServer() as s3:
        reasons = ["baseline", "periodic", "periodic", "threshold-80", "periodic", "periodic"]
        snaps = [
            snapshot(i, reasons[i % len(reasons)], profile_bytes=400_000, heap_inuse=i + 1)
            for i in range(12)
        ]
        cut = snaps[4]  # S3 dies after this one's heap profile, before its manifest
        archive = PlugPuller(
            archive_at(s3, "oomf/outage"), s3, after=f"{cut.key.path()}{HEAP_PROFILE}"
        )
        spool_dir = tmp_path / "spool"
        spool = Spool(spool_dir, max_bytes=64 * 2**20, probe_interval=0.5)

        slowest = 0.0
        for snap in snaps:
            started = time.monotonic()
            await spool.submit(archive, snap.key, snap.files, snap.manifest)
            slowest = max(slowest, time.monotonic() - started)
        assert not s3.running
        assert slowest < 10, f"an outage should be noticed in seconds, a submit took {slowest:.1f}s"
        assert spool.pending() == [s.key for s in snaps[4:]]
        with pytest.raises(StorageUnavailable):
            await archive.list_snapshots()

        # the operator restarts while S3 is down; then S3 comes back with what it had
        restarted = Spool(spool_dir, max_bytes=64 * 2**20)
        assert restarted.pending() == [s.key for s in snaps[4:]]
        await asyncio.to_thread(s3.start)
        assert await archive.list_snapshots() == [s.key for s in snaps[:4]]
        assert await archive.list_incomplete() == [cut.key.path()]  # files, no manifest

        assert await restarted.drain(archive, initial_backoff=0.1) == len(snaps) - 4

        assert restarted.pending() == []
        assert list(spool_dir.iterdir()) == []
        assert await archive.list_snapshots() == [s.key for s in snaps]  # each exactly once
        assert await archive.list_incomplete() == []
        for snap in snaps:
            manifest, files = await archive.read_snapshot(snap.key)  # verifies every digest
            assert (manifest, files) == (snap.manifest, snap.files)
        assert await restarted.drain(archive) == 0
