"""`oomforensics report` on an archive-shaped folder tree: two pods, two runs of one of them,
an OOM kill record; the page is written whole and says what it holds."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oomforensics.cli.main import main
from oomforensics.cli.report import find_snapshot_dirs, write_report
from oomforensics.triggers import ContainerRun
from oomforensics.triggers.end_of_run import Ending, EndOfRun
from tests.support.profiles import ProfileBuilder

MiB = 2**20
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def write_snapshot(run_dir: Path, seconds: int, reason: str, cache: int, run: int) -> Path:
    moment = T0 + timedelta(seconds=seconds)
    folder = run_dir / f"{moment:%Y%m%dT%H%M%S}.000Z-{reason}"
    folder.mkdir(parents=True)
    builder = ProfileBuilder().sample([["main.main"]], 1, MiB, 1, MiB)
    if cache:
        builder.sample([["main.cacheResponse"], ["main.handle"]], 1, cache, 1, cache)
    (folder / "heap.pb.gz").write_bytes(builder.serialize())
    namespace, investigation, pod, container = run_dir.parts[-5:-1]
    manifest = {
        "namespace": namespace,
        "investigation": investigation,
        "pod": pod,
        "container": container,
        "run": run,
        "capturedAt": moment.isoformat(),
        "reason": reason,
        "workingSetBytes": 20 * MiB + cache,
        "limitBytes": 128 * MiB,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def investigation(tmp_path) -> Path:
    root = tmp_path / "fetched" / "prod" / "mi"
    for run in (0, 1):
        run_dir = root / "api-1" / "api" / f"run-{run}"
        write_snapshot(run_dir, 1000 * run, "baseline", 0, run)
        write_snapshot(run_dir, 1000 * run + 60, "periodic", 40 * MiB, run)
        write_snapshot(run_dir, 1000 * run + 90, "threshold-80", 90 * MiB, run)
    killed = EndOfRun(
        run=ContainerRun("prod", "api-1", "uid-1", "api", 0),
        ending=Ending.OOM_KILLED,
        time=datetime(2026, 11, 26, 10, 1, 40, tzinfo=UTC),
        exit_code=137,
    )
    (root / "api-1" / "api" / "run-0" / "oom.json").write_bytes(killed.to_bytes())
    worker = root / "worker-1" / "worker" / "run-0"
    write_snapshot(worker, 0, "baseline", 0, 0)
    write_snapshot(worker, 30, "periodic", MiB, 0)
    return tmp_path / "fetched"


def test_a_whole_investigation_becomes_one_page_with_a_section_per_run(investigation, tmp_path):
    out = tmp_path / "out" / "report.html"
    written = write_report([investigation], out)
    html = out.read_text()
    assert written.size == len(html.encode()) and written.runs == 3 and written.snapshots == 8
    assert html.count('data-run="') == 3 and html.count("data-oom-kill=") == 1
    assert html.count("data-snapshot=") == 8
    assert "prod/api-1 · api · run 0" in html and "prod/worker-1 · worker · run 0" in html
    assert not list(out.parent.glob(".*.tmp"))


def test_snapshot_dirs_and_folders_mix_without_duplicates(investigation):
    run0 = investigation / "prod" / "mi" / "api-1" / "api" / "run-0"
    one = sorted(run0.iterdir())[0]
    found = find_snapshot_dirs([one, run0, investigation])
    assert len(found) == 8 and found[0] == one


def test_the_command_reports_what_it_wrote(investigation, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(investigation), "-o", str(out), "--thresholds", "70,85"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out} (") and "8 snapshots in 3 container runs" in said
    assert 'data-threshold="70"' in out.read_text()


def test_a_folder_without_snapshots_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")]) == 1
    assert "no snapshot directory (with heap.pb.gz)" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().err
