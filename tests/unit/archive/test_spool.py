import logging

import pytest

from oomforensics.archive import Archive, ArchiveError, Spool, SpoolFull, StorageUnavailable
from tests.unit.archive.factory import snapshot


class CountingArchive(Archive):
    """An in-memory archive that remembers every upload attempt, in order."""

    def __init__(self) -> None:
        base = Archive.from_url("memory://")
        super().__init__(base._store, url="memory://")
        self.puts = []

    async def put_snapshot(self, key, files, manifest):
        self.puts.append(key)
        return await super().put_snapshot(key, files, manifest)


class FlakyArchive(CountingArchive):
    """Down while `down` is true, as seen from the client."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def put_snapshot(self, key, files, manifest):
        if self.down:
            self.puts.append(key)
            raise StorageUnavailable("write: storage unavailable: connection refused")
        return await super().put_snapshot(key, files, manifest)


async def test_an_available_store_gets_the_snapshot_directly(tmp_path):
    store = CountingArchive()
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    snap = snapshot()
    assert await spool.submit(store, snap.key, snap.files, snap.manifest) == snap.key.path()
    assert await store.list_snapshots() == [snap.key]
    assert spool.pending() == []
    assert spool.size_bytes == 0


async def test_snapshots_survive_an_outage_and_a_restart_and_arrive_once_in_order(
    tmp_path, unreachable, caplog
):
    caplog.set_level(logging.WARNING)
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    snaps = [snapshot(0, "baseline"), snapshot(10), snapshot(12, "threshold-80"), snapshot(20)]
    for snap in snaps:
        path = await spool.submit(unreachable, snap.key, snap.files, snap.manifest)
        assert path == unreachable.path_of(snap.key)
    assert spool.pending() == [s.key for s in snaps]
    assert spool.size_bytes >= sum(len(d) for s in snaps for d in s.files.values())
    assert "storage unavailable, spooling" in caplog.text

    # the operator restarts: a new spool on the same folder finds everything
    restarted = Spool(tmp_path / "spool", max_bytes=10**6)
    assert restarted.pending() == [s.key for s in snaps]
    assert restarted.size_bytes == spool.size_bytes

    store = CountingArchive()
    assert await restarted.drain(store) == len(snaps)
    assert store.puts == [s.key for s in snaps]  # oldest first, each once
    assert await store.list_snapshots() == [s.key for s in snaps]
    for snap in snaps:
        assert (await store.read_snapshot(snap.key))[1] == snap.files
    assert restarted.pending() == []
    assert restarted.size_bytes == 0
    assert list((tmp_path / "spool").iterdir()) == []

    assert await restarted.drain(store) == 0
    assert len(store.puts) == len(snaps)


async def test_a_drain_against_a_store_still_down_keeps_everything(tmp_path, unreachable, caplog):
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    snap = snapshot()
    await spool.submit(unreachable, snap.key, snap.files, snap.manifest)
    caplog.set_level(logging.WARNING)

    assert await spool.drain(unreachable, attempts=2, initial_backoff=0.01) == 0
    assert spool.pending() == [snap.key]
    assert "still unavailable after 2 attempts; 1 snapshot(s)" in caplog.text


async def test_drain_backs_off_until_the_store_returns(tmp_path, monkeypatch):
    store = FlakyArchive()
    store.down = True
    spool = Spool(tmp_path / "spool", max_bytes=10**6, probe_interval=0)
    snaps = [snapshot(0), snapshot(1)]
    for snap in snaps:
        await spool.submit(store, snap.key, snap.files, snap.manifest)

    waits = []

    async def sleep(seconds):  # the store comes back during the third wait
        waits.append(seconds)
        if len(waits) == 3:
            store.down = False

    monkeypatch.setattr("oomforensics.archive.spool.asyncio.sleep", sleep)
    assert await spool.drain(store, initial_backoff=1.0, max_backoff=3.0) == 2
    assert waits == [1.0, 2.0, 3.0]
    assert await store.list_snapshots() == [s.key for s in snaps]


async def test_a_snapshot_stored_before_a_crash_is_not_duplicated_by_the_drain(tmp_path):
    """The upload succeeded but the operator died before removing the spool entry."""
    store = FlakyArchive()
    store.down = True
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    snap = snapshot()
    await spool.submit(store, snap.key, snap.files, snap.manifest)
    store.down = False
    await store.put_snapshot(snap.key, snap.files, snap.manifest)

    assert await Spool(tmp_path / "spool", max_bytes=10**6).drain(store) == 1
    assert await store.list_snapshots() == [snap.key]
    await store.verify(snap.key)


async def test_after_an_outage_is_seen_submissions_spool_without_waiting_for_it_again(tmp_path):
    store = FlakyArchive()
    store.down = True
    spool = Spool(tmp_path / "spool", max_bytes=10**6, probe_interval=3600)
    for minute in (0, 1, 2):
        snap = snapshot(minute)
        await spool.submit(store, snap.key, snap.files, snap.manifest)
    assert len(store.puts) == 1
    assert len(spool.pending()) == 3
    store.down = False
    assert await spool.drain(store) == 3
    snap = snapshot(3)
    await spool.submit(store, snap.key, snap.files, snap.manifest)  # straight to the store again
    assert spool.pending() == []


async def test_an_interrupted_spool_write_is_discarded_on_restart(tmp_path, unreachable):
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    snap = snapshot()
    await spool.submit(unreachable, snap.key, snap.files, snap.manifest)
    torn = tmp_path / "spool" / ".tmp-0123abcd"  # a write the crash interrupted
    torn.mkdir()
    (torn / "heap.pb.gz").write_bytes(b"half")

    restarted = Spool(tmp_path / "spool", max_bytes=10**6)
    assert restarted.pending() == [snap.key]
    assert not torn.exists()


async def test_a_full_spool_evicts_periodic_snapshots_oldest_first_and_says_so(
    tmp_path, unreachable, caplog
):
    one = snapshot().manifest.total_bytes + 2000  # a snapshot with its manifest, roughly
    spool = Spool(tmp_path / "spool", max_bytes=5 * one)
    baseline, p1, p2, threshold, p3, p4, p5 = snaps = [
        snapshot(0, "baseline"),
        snapshot(10),
        snapshot(20),
        snapshot(25, "threshold-80"),
        snapshot(30),
        snapshot(40),
        snapshot(50),
    ]
    caplog.set_level(logging.WARNING)
    for snap in snaps:
        await spool.submit(unreachable, snap.key, snap.files, snap.manifest)

    assert spool.pending() == [baseline.key, threshold.key, p3.key, p4.key, p5.key]
    assert spool.size_bytes <= 5 * one
    warnings = [r.getMessage() for r in caplog.records if "is full" in r.getMessage()]
    assert len(warnings) == 2
    assert "evicting 1 snapshot(s) [1 periodic]" in warnings[0]
    assert p1.key.path() in warnings[0]
    assert p2.key.path() in warnings[1]


async def test_a_full_spool_of_valuable_snapshots_refuses_a_routine_one_loudly(
    tmp_path, unreachable, caplog
):
    one = snapshot().manifest.total_bytes + 2000
    spool = Spool(tmp_path / "spool", max_bytes=3 * one)
    valuable = [
        snapshot(0, "baseline"),
        snapshot(10, "threshold-80"),
        snapshot(11, "threshold-90"),
    ]
    for snap in valuable:
        await spool.submit(unreachable, snap.key, snap.files, snap.manifest)
    # a newer periodic snapshot of the run is its pre-OOM candidate: it displaces the oldest
    # routine one, but there is none, and it is worth less than a threshold capture...
    late = snapshot(20, "periodic", run=1)  # ...of another run, so also its newest
    caplog.set_level(logging.WARNING)
    with pytest.raises(SpoolFull, match="was not kept"):
        await spool.submit(unreachable, late.key, late.files, late.manifest)
    assert spool.pending() == [s.key for s in valuable]
    assert "not keeping the new 1 snapshot(s) [1 periodic]" in caplog.text


async def test_the_newest_snapshot_of_a_run_outlives_older_routine_ones(tmp_path, unreachable):
    """The newest snapshot of a run is the pre-OOM candidate: the last look before a kill."""
    one = snapshot().manifest.total_bytes + 2000
    spool = Spool(tmp_path / "spool", max_bytes=2 * one)
    threshold, p1, p2 = snapshot(0, "threshold-95"), snapshot(1, run=1), snapshot(2, run=2)
    for snap in (threshold, p1, p2):
        await spool.submit(unreachable, snap.key, snap.files, snap.manifest)
    # p1 and p2 are each the newest of their runs; the older one goes
    assert spool.pending() == [threshold.key, p2.key]


async def test_bad_input_is_refused_before_it_reaches_the_spool(tmp_path, unreachable):
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    snap = snapshot()
    with pytest.raises(ArchiveError):
        await spool.submit(unreachable, snap.key, {**snap.files, "heap.txt": b"x"}, snap.manifest)
    assert spool.pending() == []
