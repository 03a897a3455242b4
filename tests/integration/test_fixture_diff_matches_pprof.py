"""For every leak mode of the real Go fixture, `oomforensics diff --json` equals
`go tool pprof -top -diff_base`, function by function, in pprof's order."""

import json
from pathlib import Path

import pytest

from oomforensics.cli.main import main
from tests.support.gopprof import pprof_top

pytestmark = pytest.mark.gotool


@pytest.fixture
def snapshots(mode_snapshots) -> tuple[str, Path, Path]:
    return mode_snapshots.mode, mode_snapshots.base, mode_snapshots.new


def diff_json(capsys, *args: str) -> dict:
    assert main(["diff", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("sample_index", ["inuse_space", "inuse_objects"])
def test_every_function_equals_pprof(snapshots, capsys, sample_index):
    _, base, new = snapshots
    ours = diff_json(capsys, "--sample-index", sample_index, str(base), str(new))
    theirs = pprof_top(base / "heap.pb.gz", new / "heap.pb.gz", sample_index)

    assert ours["sampleIndex"] == sample_index
    assert theirs, "pprof reported no change at all: the snapshots are identical"
    assert [(f["name"], f["flat"], f["cum"]) for f in ours["functions"]] == [
        (r.name, r.flat, r.cum) for r in theirs
    ]


def test_pprof_default_view_is_our_list_trimmed(snapshots, capsys):
    # What a user sees from plain `go tool pprof -top`: the same rows, in the same order.
    _, base, new = snapshots
    ours = diff_json(capsys, str(base), str(new))
    theirs = pprof_top(base / "heap.pb.gz", new / "heap.pb.gz", all_nodes=False)
    rows = [(f["name"], f["flat"], f["cum"]) for f in ours["functions"]]
    shown = {(r.name, r.flat, r.cum) for r in theirs}
    assert [row for row in rows if row in shown] == [(r.name, r.flat, r.cum) for r in theirs]


def test_base_mode_and_alloc_space_also_match(snapshots, capsys):
    _, base, new = snapshots
    ours = diff_json(
        capsys, "--base-mode", "base", "--sample-index", "alloc_space", str(base), str(new)
    )
    theirs = pprof_top(base / "heap.pb.gz", new / "heap.pb.gz", "alloc_space", "base")
    assert [(f["name"], f["flat"], f["cum"]) for f in ours["functions"]] == [
        (r.name, r.flat, r.cum) for r in theirs
    ]


def test_memory_and_goroutines_come_from_the_text_profiles(snapshots, capsys):
    _, base, new = snapshots
    result = diff_json(capsys, str(base), str(new))
    memory = result["memory"]
    for key in ("HeapInuse", "HeapSys", "StackInuse", "StackSys", "MaxRSS", "rssBytes"):
        assert memory["base"][key] > 0, key
        assert memory["delta"][key] == memory["new"][key] - memory["base"][key]
    assert result["goroutines"]["base"] > 0 and result["goroutines"]["new"] > 0
    assert result["total"]["new"] - result["total"]["base"] == sum(
        f["flat"] for f in result["functions"]
    )
