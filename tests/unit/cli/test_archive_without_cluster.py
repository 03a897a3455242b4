"""Every `--archive` form of the CLI reads the archive alone: no kubeconfig, no ~/.kube, no
cluster. The archive here is what local mode (`oomforensics demo`) leaves: a watched process
killed at its limit, its snapshots and its `oom.json`, written by the same code the demo runs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import build_manifest
from oomforensics.archive.store import Archive
from oomforensics.cli.download import local_folder
from oomforensics.cli.main import main
from oomforensics.local.session import end_of_run, next_run
from oomforensics.local.watcher import Capture, Exit, WatchResult
from oomforensics.triggers.end_of_run import EndOfRun
from oomforensics.triggers.model import MemorySample

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
LIMIT = 200 * 2**20
REASONS = ("baseline", "threshold-80", "threshold-90")


async def a_demo_run(archive: Archive, minute: int) -> tuple[WatchResult, EndOfRun]:
    """One watch as `oomforensics demo` files it: a new incarnation, three snapshots, a kill."""
    run = await next_run(archive, "demo", "leaky-tls403")
    result = WatchResult()
    for i, reason in enumerate(REASONS):
        key = SnapshotKey("demo", run, T0 + timedelta(minutes=minute + i), reason)
        files = {"heap.pb.gz": f"heap {key.path()}".encode() * 20}
        working_set = (50 + 20 * i) * LIMIT // 100
        manifest = build_manifest(key, files, working_set_bytes=working_set, limit_bytes=LIMIT)
        path = await archive.put_snapshot(key, files, manifest)
        at = key.captured_at.timestamp()
        result.captures.append(Capture(key, path, 50.0 + 20 * i, working_set, at, at, False))
    result.exit = Exit(137, True, "the cgroup's oom_kill counter went from 0 to 1")
    result.last_sample = MemorySample(result.captures[-1].decided_at + 1, LIMIT - 1)
    record = end_of_run(result, run, LIMIT)
    await archive.put_run_file("demo", run, record.file_name, record.to_bytes())
    return result, record


@pytest.fixture
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(home))


def test_list_and_fetch_read_the_demos_archive_without_a_cluster(
    no_kubeconfig: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = Archive.from_url((tmp_path / "forensics").as_uri())
    first, _ = asyncio.run(a_demo_run(archive, 0))
    second, last_kill = asyncio.run(a_demo_run(archive, 30))  # the demo run again: run 1
    assert second.captures[0].key.run == 1
    assert first.captures[0].key.pod_uid != second.captures[0].key.pod_uid

    assert main(["list", "--archive", archive.url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].split() == ["local", "demo", "2", "2", "6", "2026-11-26", "03:32:00"]

    assert main(["list", "--archive", archive.url, "local/demo"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("OOM-killed") == 2
    assert f"pod leaky-tls403 (uid {second.captures[0].key.container_run.uid_prefix}" in listing

    out = tmp_path / "out"
    argv = ["fetch", "--archive", archive.url, "--path", "local/demo", "--oom", "-1"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fetched 3 snapshot(s)" in printed  # the last kill's run, not the first one's
    assert "baseline vs pre-OOM" in printed
    pre = second.captures[-1].key
    assert last_kill.pre_oom_snapshot == pre.path()
    assert f"{local_folder(out, pre)}/heap.pb.gz" in printed
    copied = local_folder(out, pre).parent / "oom.json"
    assert EndOfRun.from_bytes(copied.read_bytes()) == last_kill


def test_a_bare_name_with_an_archive_is_a_usage_error_not_a_kubeconfig_error(
    no_kubeconfig: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = (tmp_path / "empty").as_uri()
    assert main(["list", "--archive", url, "demo"]) == 1
    error = capsys.readouterr().err
    assert "expected NAMESPACE/NAME" in error and "kubeconfig" not in error
    assert main(["list", "--archive", url]) == 0
    assert capsys.readouterr().out.strip() == f"no snapshots in {url}"
