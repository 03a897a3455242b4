import asyncio
import time

import obstore
import pytest
from obstore.store import MemoryStore

from oomforensics.archive import (
    GOROUTINE_TEXT,
    HEAP_PROFILE,
    HEAP_TEXT,
    MANIFEST_NAME,
    Archive,
    ArchiveError,
    ChecksumMismatch,
    SnapshotConflict,
    SnapshotIncomplete,
    SnapshotNotFound,
    StorageUnavailable,
)
from tests.unit.archive.factory import POD_UID, snapshot


async def test_a_stored_snapshot_reads_back_byte_for_byte_and_verifies(archive):
    snap = snapshot(heap_inuse=42)
    path = await archive.put_snapshot(snap.key, snap.files, snap.manifest)

    assert path == snap.key.path()
    assert await archive.list_snapshots() == [snap.key]
    assert await archive.read_manifest(snap.key) == snap.manifest
    assert await archive.read_file(snap.key, HEAP_PROFILE) == snap.files[HEAP_PROFILE]
    manifest, files = await archive.read_snapshot(snap.key)
    assert (manifest, files) == (snap.manifest, snap.files)
    await archive.verify(snap.key)


async def test_listing_filters_by_pod_container_and_run_and_sorts_by_time(archive):
    snaps = [
        snapshot(30, pod="a"),
        snapshot(0, "baseline", pod="a"),
        snapshot(10, pod="a", run=1),
        snapshot(5, pod="b"),
        snapshot(20, pod="a", container="sidecar"),
        snapshot(1, pod="a", namespace="other"),
    ]
    for snap in snaps:
        await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    a, a_base, a_run1, b, a_sidecar, other = (s.key for s in snaps)

    assert await archive.list_snapshots() == [a_base, other, b, a_run1, a_sidecar, a]
    assert await archive.list_snapshots("shop") == [a_base, b, a_run1, a_sidecar, a]
    assert await archive.list_snapshots("shop", "checkout-leak", "a", "app") == [a_base, a_run1, a]
    assert await archive.list_snapshots("shop", "checkout-leak", "a", "app", 0) == [a_base, a]
    # filters that skip a level still work (no narrower listing, same answer)
    assert await archive.list_snapshots(pod="a", run=0) == [a_base, other, a_sidecar, a]
    assert await archive.list_snapshots(container="sidecar") == [a_sidecar]
    assert await archive.list_snapshots(pod="nobody") == []


async def test_putting_the_same_snapshot_again_is_harmless(archive):
    snap = snapshot()
    first = await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    again = await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    assert first == again
    assert await archive.list_snapshots() == [snap.key]
    await archive.verify(snap.key)


async def test_a_different_snapshot_under_the_same_key_does_not_replace_the_evidence(archive):
    snap = snapshot()
    await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    other = snapshot(profile_bytes=10)  # same key, other content
    with pytest.raises(SnapshotConflict, match="already stored"):
        await archive.put_snapshot(other.key, other.files, other.manifest)
    assert (await archive.read_snapshot(snap.key))[1] == snap.files


async def test_a_manifest_that_does_not_match_its_files_is_never_stored(archive):
    snap = snapshot()
    with pytest.raises(ChecksumMismatch, match=HEAP_TEXT):
        await archive.put_snapshot(snap.key, {**snap.files, HEAP_TEXT: b"edited"}, snap.manifest)
    with pytest.raises(ArchiveError, match="differ from the manifest"):
        await archive.put_snapshot(
            snap.key, {HEAP_PROFILE: snap.files[HEAP_PROFILE]}, snap.manifest
        )
    with pytest.raises(ArchiveError, match="describes another snapshot"):
        await archive.put_snapshot(snapshot(5).key, snap.files, snap.manifest)
    assert await archive.list_snapshots() == []
    assert await archive.list_incomplete() == []


async def test_verify_names_the_file_that_was_tampered_with(tmp_path):
    archive = Archive.from_url(f"file://{tmp_path}")
    snap = snapshot()
    await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    folder = tmp_path / snap.key.path()

    (folder / GOROUTINE_TEXT).write_bytes(b"goroutine profile: total 1\n")
    with pytest.raises(ChecksumMismatch, match=f"{GOROUTINE_TEXT}: checksum mismatch") as caught:
        await archive.verify(snap.key)
    assert caught.value.name == GOROUTINE_TEXT
    with pytest.raises(ChecksumMismatch):
        await archive.read_snapshot(snap.key)

    (folder / GOROUTINE_TEXT).unlink()
    with pytest.raises(SnapshotIncomplete, match=f"{GOROUTINE_TEXT}: named in the manifest"):
        await archive.verify(snap.key)


async def test_files_without_a_manifest_are_an_incomplete_snapshot_not_a_snapshot(tmp_path):
    """An upload cut short (the operator died between the files and the manifest)."""
    archive = Archive.from_url(f"file://{tmp_path}")
    done, cut = snapshot(0), snapshot(10)
    await archive.put_snapshot(done.key, done.files, done.manifest)
    folder = tmp_path / cut.key.path()
    folder.mkdir(parents=True)
    (folder / HEAP_PROFILE).write_bytes(cut.files[HEAP_PROFILE])

    assert await archive.list_snapshots() == [done.key]
    assert await archive.list_incomplete() == [cut.key.path()]
    assert await archive.list_incomplete(pod="somebody-else") == []
    with pytest.raises(SnapshotIncomplete, match=r"files but no manifest\.json"):
        await archive.read_manifest(cut.key)
    with pytest.raises(SnapshotIncomplete):
        await archive.verify(cut.key)

    # retrying the upload completes it
    await archive.put_snapshot(cut.key, cut.files, cut.manifest)
    assert await archive.list_snapshots() == [done.key, cut.key]
    assert await archive.list_incomplete() == []


async def test_delete_removes_the_manifest_first_then_the_files(archive):
    deleted = []

    class Recording(Archive):
        async def _delete(self, paths):
            deleted.extend(paths)
            await super()._delete(paths)

    spy = Recording(archive._store, url=archive.url)
    keep, gone = snapshot(0), snapshot(10)
    for snap in (keep, gone):
        await spy.put_snapshot(snap.key, snap.files, snap.manifest)

    await spy.delete_snapshot(gone.key)

    folder = gone.key.path()
    assert deleted[0] == folder + MANIFEST_NAME
    assert sorted(deleted[1:]) == sorted(folder + name for name in gone.files)
    assert await spy.list_snapshots() == [keep.key]
    assert await spy.list_incomplete() == []
    await spy.delete_snapshot(gone.key)  # deleting again is fine


async def test_reading_what_is_not_there_says_so(archive):
    snap = snapshot()
    with pytest.raises(SnapshotNotFound, match="no such snapshot"):
        await archive.read_manifest(snap.key)
    with pytest.raises(SnapshotNotFound, match="no such file"):
        await archive.read_file(snap.key, HEAP_TEXT)
    with pytest.raises(ArchiveError, match="plain name"):
        await archive.read_file(snap.key, "../secrets")


async def test_objects_outside_the_layout_are_ignored(tmp_path):
    (tmp_path / "README.txt").write_text("not a snapshot")
    (tmp_path / "shop" / "notes").mkdir(parents=True)
    (tmp_path / "shop" / "notes" / "x.txt").write_text("neither")
    archive = Archive.from_url(f"file://{tmp_path}")
    snap = snapshot()
    await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    assert await archive.list_snapshots() == [snap.key]
    assert await archive.list_incomplete() == []


async def test_a_folder_archive_is_laid_out_as_documented_and_outlives_the_process(tmp_path):
    snap = snapshot()
    await Archive.from_url(f"file://{tmp_path}").put_snapshot(snap.key, snap.files, snap.manifest)
    folder = (
        tmp_path
        / f"shop/checkout-leak/checkout-7d9f/{POD_UID}/app/run-0/20261126T030000.000Z-periodic"
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted([*snap.files, MANIFEST_NAME])
    assert (folder / HEAP_PROFILE).read_bytes() == snap.files[HEAP_PROFILE]  # as served

    reopened = Archive.from_url(f"file://{tmp_path}")
    assert await reopened.list_snapshots() == [snap.key]
    await reopened.verify(snap.key)

    await reopened.delete_snapshot(snap.key)
    assert list(tmp_path.iterdir()) == []  # no empty folders left behind


async def test_relative_file_urls_and_memory_prefixes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snap = snapshot()
    relative = Archive.from_url("file://./evidence/oomf")
    await relative.put_snapshot(snap.key, snap.files, snap.manifest)
    assert (tmp_path / "evidence" / "oomf" / snap.key.path() / MANIFEST_NAME).is_file()

    prefixed = Archive.from_url("memory:///team/oomf")
    assert await prefixed.put_snapshot(snap.key, snap.files, snap.manifest) == snap.key.path()
    assert await prefixed.list_snapshots() == [snap.key]
    stored = await obstore.list(prefixed._store).collect_async()
    assert {meta["path"] for meta in stored} == {
        f"team/oomf/{snap.key.path()}{name}" for name in [*snap.files, MANIFEST_NAME]
    }


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("ftp://host/x", {}, "unsupported scheme 'ftp'"),
        ("s3://", {}, "names no bucket"),
        ("file://host/x", {}, "file:///absolute/path"),
        ("memory://", {"options": {"region": "x"}}, "apply to s3, gs and az only"),
        ("s3://b", {"options": {"colour": "blue"}}, r"unknown option\(s\) \['colour'\]"),
        ("s3://b", {"credentials": {"password": "x"}}, r"unknown credential\(s\) \['password'\]"),
        ("s3://b", {"options": {"allow_http": "maybe"}}, "must be true or false"),
        ("s3://b", {"options": {"timeout": "soon"}}, "must be a duration"),
        ("s3://b", {"options": {"max_retries": "many"}}, "not an integer"),
    ],
)
def test_bad_archive_urls_and_options_are_explained(url, kwargs, message):
    with pytest.raises(ArchiveError, match=message):
        Archive.from_url(url, **kwargs)


def test_remote_stores_are_configured_without_network():
    s3 = Archive.from_url(
        "s3://evidence/oomf",
        credentials={"access_key_id": "k", "secret_access_key": "s", "session_token": "t"},
        options={"endpoint": "https://minio.storage:9000", "region": "eu-west-1",
                 "timeout": "90s", "retry_timeout": "10s", "max_retries": "2"},
    )  # fmt: skip
    assert s3.url == "s3://evidence/oomf"
    assert Archive.from_url("gs://evidence/oomf", options={"skip_signature": "true"})


async def test_an_unreachable_store_is_reported_as_unavailable_within_seconds(unreachable: Archive):
    snap = snapshot()
    for attempt in (
        lambda: unreachable.put_snapshot(snap.key, snap.files, snap.manifest),
        lambda: unreachable.list_snapshots(),
        lambda: unreachable.read_manifest(snap.key),
        lambda: unreachable.delete_snapshot(snap.key),
    ):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="storage unavailable"):
            await attempt()
        assert time.monotonic() - started < 5


def test_snapshot_paths_are_relative_to_the_archive_url():
    snap = snapshot()
    for url in ("memory://", "memory:///oomf", "s3://bucket/oomf"):
        assert Archive.from_url(url).path_of(snap.key) == snap.key.path()


async def test_a_run_keeps_records_about_itself_beside_its_snapshots(archive):
    snap = snapshot()
    await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    record = b'{"reason": "OOMKilled"}\n'

    run = snap.key.container_run
    path = await archive.put_run_file("checkout-leak", run, "oom.json", record)

    assert path == f"shop/checkout-leak/checkout-7d9f/{POD_UID}/app/run-0/oom.json"
    assert await archive.read_run_file("checkout-leak", run, "oom.json") == record
    assert await archive.list_snapshots() == [snap.key]  # a run record is not a snapshot
    assert await archive.list_incomplete() == []
    with pytest.raises(SnapshotNotFound):
        await archive.read_run_file("checkout-leak", run, "exit.json")
    with pytest.raises(ArchiveError, match="plain name"):
        await archive.put_run_file("checkout-leak", run, "../oom.json", record)


async def test_incarnations_of_one_pod_name_are_listed_apart(archive):
    """A pod recreated under the same name: `pod` lists both, `pod_uid` or `list_run` one."""
    old = snapshot(0, "baseline")
    new = snapshot(5, "baseline", pod_uid="0b8e7c1d-5a2f-4c3e-8d9a-1f2e3d4c5b6a")
    for snap in (old, new):
        await archive.put_snapshot(snap.key, snap.files, snap.manifest)
    assert await archive.list_snapshots("shop", "checkout-leak", "checkout-7d9f") == [
        old.key,
        new.key,
    ]
    assert await archive.list_run("checkout-leak", new.key.container_run) == [new.key]
    assert await archive.list_snapshots(pod_uid=POD_UID) == [old.key]


async def test_stale_incomplete_folders_are_deleted_and_nothing_else(tmp_path):
    """Left by an upload cut short: gone once older than the cutoff, unless a spool holds it."""
    archive = Archive.from_url(f"file://{tmp_path}")
    done, stale, spooled, fresh = snapshot(0), snapshot(10), snapshot(20), snapshot(40)
    await archive.put_snapshot(done.key, done.files, done.manifest)
    for cut in (stale, spooled, fresh):
        folder = tmp_path / cut.key.path()
        folder.mkdir(parents=True)
        (folder / HEAP_PROFILE).write_bytes(cut.files[HEAP_PROFILE])
        (folder / GOROUTINE_TEXT).write_bytes(cut.files[GOROUTINE_TEXT])

    cutoff = snapshot(30).key.captured_at
    deleted = await archive.delete_incomplete(cutoff, "shop", keep={spooled.key})

    assert deleted == [stale.key]
    assert not (tmp_path / stale.key.path()).exists() or not any(
        (tmp_path / stale.key.path()).iterdir()
    )
    assert await archive.list_incomplete() == [spooled.key.path(), fresh.key.path()]
    assert await archive.list_snapshots() == [done.key]
    await archive.verify(done.key)
    assert await archive.delete_incomplete(cutoff, "elsewhere") == []


async def test_requests_in_flight_are_bounded_per_archive(monkeypatch):
    # An operator restarted with 1,000 targets reads 1,000 run folders at once; the archive
    # must not open a connection for each.
    from oomforensics.archive import store as store_module

    in_flight = peak = 0
    gate = asyncio.Event()
    real_put = obstore.put_async

    async def counted_put(store, path, data):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= 3:  # the bound reached: let them all through
            gate.set()
        await gate.wait()
        try:
            return await real_put(store, path, data)
        finally:
            in_flight -= 1

    monkeypatch.setattr(store_module.obstore, "put_async", counted_put)
    bounded = Archive(MemoryStore(), max_requests=3)
    snaps = [snapshot(i, pod=f"p{i}") for i in range(12)]
    await asyncio.gather(*(bounded.put_snapshot(s.key, s.files, s.manifest) for s in snaps))

    assert peak == 3
    assert len(await bounded.list_snapshots()) == 12
