"""The timeline chart: a marker per snapshot however many, readable labels and axes."""

import re

from oomforensics.report.model import RunEnd, Timeline, TimelinePoint
from oomforensics.report.timeline import _nice_bytes, render_timeline

MiB, GiB = 2**20, 2**30
LIMIT = 512 * MiB


def point(i: int, reason: str = "periodic", working_set: int | None = None) -> TimelinePoint:
    return TimelinePoint(
        time=1_800_000_000 + 60 * i,
        snapshot=f"s{i}-{reason}",
        reason=reason,
        working_set=working_set if working_set is not None else (100 + 6 * i) * MiB,
        rss=None,
        heap_inuse=None,
        limit=LIMIT,
        files=("heap.pb.gz",),
    )


def test_many_snapshots_each_get_a_marker_and_crowded_routine_ones_no_label():
    points = (*(point(i) for i in range(60)), point(60, "threshold-80", 420 * MiB))
    end = RunEnd("oom-kill", points[-1].time + 30, "killed", 137, LIMIT)
    svg = render_timeline(Timeline(points, LIMIT, (80, 90, 95), end), "run-1")
    assert svg.count("data-snapshot=") == 61 and svg.count("data-oom-kill=") == 1
    labels = re.findall(r'class="marker-label"[^>]*>([^<]*)<', svg)
    assert 2 <= len(labels) < 30 and "threshold-80" in labels and labels[0] == "periodic"
    assert "time (UTC, 2027-01-15)" in svg and ">memory</text>" in svg


def test_without_memory_figures_the_markers_sit_on_the_heap_profile():
    bare = [
        TimelinePoint(1_800_000_000 + 60 * i, f"s{i}", "snapshot", None, None, None, None, (), i)
        for i in (1, 2)
    ]
    svg = render_timeline(Timeline(tuple(bare), None, (80,), None), "run-1")
    assert svg.count("data-snapshot=") == 2 and "heap-profile" in svg
    assert "no memory limit recorded" in svg and "data-threshold" not in svg


def test_tick_steps_are_round_in_their_unit():
    assert _nice_bytes(2.44 * GiB) == 2.5 * GiB
    assert _nice_bytes(33 * MiB) == 50 * MiB
    assert _nice_bytes(180 * 1024) == 200 * 1024
