"""Fetching from a real archive (a local folder through obstore): what is chosen, what is
verified, what a second run skips, what a damaged archive file does."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oomforensics.analysis.units import format_bytes
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import Manifest, build_manifest
from oomforensics.archive.store import Archive
from oomforensics.cli.download import Progress, fetch_snapshots, local_folder, read_manifests
from oomforensics.cli.listing import render_investigation, render_table
from oomforensics.cli.main import main
from oomforensics.cli.selection import Filters, kills_from_status, pairs, select
from oomforensics.triggers.end_of_run import Ending, EndOfRun
from oomforensics.triggers.model import ContainerRun

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
LIMIT = 100 * 2**20
REASONS = ["baseline", "periodic", "threshold-80", "threshold-90", "threshold-95"]


def key(pod: str, run: int, minute: int, reason: str, uid: str | None = None) -> SnapshotKey:
    container_run = ContainerRun("default", pod, uid or f"uid-{pod}", "app", run)
    return SnapshotKey("inv", container_run, T0 + timedelta(minutes=minute), reason)


async def store(archive: Archive, k: SnapshotKey, percent: int) -> None:
    files = {
        "heap.pb.gz": f"heap of {k.path()}".encode() * 50,
        "heap.txt": f"# runtime.MemStats\n# HeapInuse = {percent * 2**18}\n".encode(),
    }
    manifest = build_manifest(
        k,
        files,
        working_set_bytes=percent * LIMIT // 100,
        limit_bytes=LIMIT,
        memstats={"HeapInuse": percent * 2**18},
    )
    await archive.put_snapshot(k, files, manifest)


@pytest.fixture
async def archive(tmp_path: Path) -> Archive:
    """Pod checkout: run 0 (five snapshots, OOM-killed after the last), run 1 (one)."""
    store_dir = tmp_path / "archive"
    archive = Archive.from_url(f"file://{store_dir}")
    for minute, reason in enumerate(REASONS):
        await store(archive, key("checkout", 0, minute, reason), 10 + 20 * minute)
    await store(archive, key("checkout", 1, 10, "baseline"), 12)
    kill = kill_of_run0()
    await archive.put_run_file("inv", kill.run, kill.file_name, kill.to_bytes())
    return archive


def kill_of_run0() -> EndOfRun:
    return EndOfRun(
        run=key("checkout", 0, 0, "baseline").container_run,
        ending=Ending.OOM_KILLED,
        time=datetime(2026, 11, 26, 3, 5, tzinfo=UTC),
        exit_code=137,
        pre_oom_snapshot=key("checkout", 0, 4, "threshold-95").path(),
    )


async def test_selection_by_oom_kill_and_last(archive: Archive) -> None:
    keys = await archive.list_snapshots("default", "inv")
    kill = kill_of_run0()
    run0 = select(keys, Filters(oom=0), kill)
    assert [k.reason for k in run0] == REASONS
    last = select(keys, Filters(last=1), kill)
    assert [k.reason for k in last] == ["baseline", "threshold-95"]  # the baseline stays
    every_run = select(keys, Filters(last=2))
    assert [(k.run, k.reason) for k in every_run] == [
        (0, "baseline"),
        (0, "threshold-90"),
        (0, "threshold-95"),
        (1, "baseline"),
    ]
    assert select(keys, Filters(run=1)) == [key("checkout", 1, 10, "baseline")]
    assert select(keys, Filters(pod="other")) == []
    (pair,) = pairs(run0, [kill])
    assert pair.base.reason == "baseline" and pair.new.reason == "threshold-95" and pair.pre_oom
    # A run without a kill compares its baseline with its latest; one snapshot: nothing.
    (latest,) = pairs(select(keys, Filters(run=0)), [])
    assert latest.new.reason == "threshold-95" and not latest.pre_oom
    assert pairs(select(keys, Filters(run=1)), [kill]) == []


async def test_a_second_fetch_downloads_nothing_and_repairs_a_damaged_copy(
    archive: Archive, tmp_path: Path
) -> None:
    keys = await archive.list_snapshots("default", "inv")
    manifests = await read_manifests(archive, keys)
    out = tmp_path / "out"
    first = await fetch_snapshots(archive, manifests, out)
    total = sum(m.total_bytes for m in manifests)
    assert (first.files_downloaded, first.bytes_downloaded, first.files_present) == (12, total, 0)
    for m in manifests:
        folder = local_folder(out, m.key)
        assert json.loads((folder / "manifest.json").read_text())["reason"] == m.reason

    again = await fetch_snapshots(archive, manifests, out)
    assert (again.files_downloaded, again.bytes_downloaded) == (0, 0)
    assert (again.files_present, again.bytes_present) == (12, total)

    damaged = local_folder(out, keys[2]) / "heap.pb.gz"
    damaged.write_bytes(b"not what the manifest says")
    (local_folder(out, keys[3]) / "heap.txt").unlink()
    repaired = await fetch_snapshots(archive, manifests, out)
    assert repaired.files_downloaded == 2 and repaired.files_present == 10
    assert damaged.read_bytes() == await archive.read_file(keys[2], "heap.pb.gz")


async def test_a_damaged_archive_file_is_named_and_never_saved(
    archive: Archive, tmp_path: Path
) -> None:
    keys = await archive.list_snapshots("default", "inv")
    bad = keys[1]
    stored = tmp_path / "archive" / bad.path() / "heap.txt"
    stored.write_bytes(stored.read_bytes() + b"tampered")
    manifests = await read_manifests(archive, keys)
    stats = await fetch_snapshots(archive, manifests, tmp_path / "out")
    (failure,) = stats.failures
    assert str(failure).startswith(f"{bad.path()}heap.txt: checksum mismatch")
    folder = local_folder(tmp_path / "out", bad)
    assert not (folder / "heap.txt").exists() and not (folder / "manifest.json").exists()
    assert (folder / "heap.pb.gz").exists()  # the intact file is kept for the next run
    assert stats.files_downloaded == 11


async def test_progress_counts_files_and_bytes(archive: Archive, tmp_path: Path) -> None:
    keys = await archive.list_snapshots("default", "inv", run=1)
    manifests = await read_manifests(archive, keys)
    screen = io.StringIO()
    await fetch_snapshots(archive, manifests, tmp_path / "out", Progress(screen, enabled=True))
    total = manifests[0].total_bytes
    frames = screen.getvalue().split("\r")
    assert frames[1].startswith("fetch: 0/2 files, 0B/")
    size = format_bytes(total)
    assert frames[-1].rstrip() == f"fetch: 2/2 files, {size}/{size}"
    assert screen.getvalue().endswith("\n")
    quiet = io.StringIO()
    await fetch_snapshots(archive, manifests, tmp_path / "out2", Progress(quiet))
    assert quiet.getvalue() == ""  # not a terminal


def test_the_command_on_an_archive_reads_the_kill_from_oom_json(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["fetch", "--archive", archive.url, "--path", "default/inv", "--oom", "0"]
    assert main([*argv, "--last", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fetched 2 snapshot(s)" in printed and "baseline vs pre-OOM" in printed
    pre = local_folder(out, key("checkout", 0, 4, "threshold-95"))
    assert (
        f"go tool pprof -diff_base {local_folder(out, key('checkout', 0, 0, 'baseline'))}"
        in printed
    )
    assert f"{pre}/heap.pb.gz" in printed
    assert main([*argv, "--out", str(out)]) == 0
    assert "3 file(s) downloaded" not in capsys.readouterr().out
    assert main([*argv[:5], "--oom", "1"]) == 1
    assert "there are 1 OOM kill(s)" in capsys.readouterr().err
    assert main(["fetch", "--archive", archive.url, "--path", "default/other"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"oomforensics: error: no snapshots yet of default/other in {archive.url}"
    )


async def test_list_renders_runs_with_percent_of_limit_and_heap(archive: Archive) -> None:
    keys = await archive.list_snapshots("default", "inv")
    manifests = await read_manifests(archive, keys)
    status = {
        "targetCount": 1,
        "summary": {"suspect": "main.fetch", "heapGrowth": "+20MB", "classification": "x"},
        "oomKills": [
            {
                "pod": "checkout",
                "container": "app",
                "run": 0,
                "time": "2026-11-26T03:05:00Z",
                "preOomSnapshot": key("checkout", 0, 4, "threshold-95").path(),
            }
        ],
    }
    kills = kills_from_status(status, "default")
    text = render_investigation("default/inv", status, "s3://b/p", manifests, kills)
    assert "  suspect    main.fetch (heap +20MB, x)" in text
    assert "pod checkout (uid uid, first snapshot 2026-11-26 03:00:00 UTC)" in text
    assert "  container app, run 0, OOM-killed 2026-11-26 03:05:00" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("    2026")]
    ten = [format_bytes(10 * LIMIT // 100), format_bytes(10 * 2**18)]
    assert rows[0] == ["2026-11-26", "03:00:00", "baseline", "10.0%", *ten]
    assert rows[4][-1] == "pre-OOM" and rows[4][3] == "90.0%"
    assert rows[5][2:4] == ["baseline", "12.0%"] and rows[5][-1] != "pre-OOM"

    table = render_table(
        [
            {"metadata": {"name": "b", "namespace": "x"}, "status": {}},
            {
                "metadata": {"name": "a", "namespace": "x"},
                "status": {
                    "targetCount": 1,
                    "snapshots": {"count": 6},
                    "oomKillCount": 1,
                    "summary": {"suspect": "main.fetch", "heapGrowth": "+20MB"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
        ],
        all_namespaces=True,
    )
    assert [line.split() for line in table.splitlines()] == [
        [
            "NAMESPACE",
            "NAME",
            "TARGETS",
            "SNAPSHOTS",
            "OOMKILLS",
            "SUSPECT",
            "HEAP",
            "GROWTH",
            "READY",
        ],
        ["x", "a", "1", "6", "1", "main.fetch", "+20MB", "True"],
        ["x", "b", "-", "-", "-", "-", "-", "Unknown"],
    ]


def test_the_command_on_a_damaged_archive_fails_without_suggesting_commands(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pre = key("checkout", 0, 4, "threshold-95")
    stored = tmp_path / "archive" / pre.path() / "heap.pb.gz"
    stored.write_bytes(b"\x00" + stored.read_bytes()[1:])
    argv = ["fetch", "--archive", archive.url, "--path", "default/inv", "--oom", "0"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "1 damaged, not saved" in captured.out
    assert "go tool pprof" not in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith(f"oomforensics: error: {pre.path()}heap.pb.gz: checksum mismatch")


NEW_UID = "0b8e7c1d-5a2f-4c3e-8d9a-1f2e3d4c5b6a"


async def recreate_checkout(archive: Archive) -> tuple[list[SnapshotKey], list[Manifest]]:
    """checkout deleted and created again: a new uid, run 0 again, two snapshots."""
    await store(archive, key("checkout", 0, 30, "baseline", NEW_UID), 10)
    await store(archive, key("checkout", 0, 31, "periodic", NEW_UID), 15)
    keys = await archive.list_snapshots("default", "inv")
    return keys, await read_manifests(archive, keys)


def test_a_pod_recreated_under_the_same_name_is_its_own_incarnation(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listed, fetched and paired apart from the killed pod of the same name; `--oom` still
    names the old pod's run only."""
    new_uid = NEW_UID
    keys, manifests = asyncio.run(recreate_checkout(archive))
    text = render_investigation("default/inv", {}, archive.url, manifests, [kill_of_run0()])
    assert "pod checkout (uid 0b8e7c1d, first snapshot 2026-11-26 03:30:00 UTC)" in text
    assert text.count("OOM-killed") == 1
    found = pairs(select(keys, Filters(run=0)), [kill_of_run0()])
    assert [(p.run.pod_uid, p.new.reason) for p in found] == [
        ("uid-checkout", "threshold-95"),
        (new_uid, "periodic"),
    ]
    out = tmp_path / "out"
    argv = ["fetch", "--archive", archive.url, "--path", "default/inv", "--oom", "-1"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fetched 5 snapshot(s)" in printed  # the killed run, not the new pod's run 0
    assert not (out / "default/inv/checkout" / new_uid).exists()
    argv = ["fetch", "--archive", archive.url, "--path", f"default/inv/checkout/{new_uid}"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "fetched 2 snapshot(s)" in capsys.readouterr().out
