from pathlib import Path

import pytest

from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.goroutines import (
    GoroutineDump,
    GoroutineGroup,
    goroutine_growth,
    parse_goroutine_text,
)

REAL = (Path(__file__).parents[2] / "fixtures/text/goroutine-go1.19.txt").read_bytes()


def test_reads_total_and_groups():
    dump = parse_goroutine_text(REAL)
    assert dump.total == 419
    assert [g.count for g in dump.groups] == [137, 137, 137]
    assert dump.groups[0].functions[0] == "internal/poll.runtime_pollWait"


def test_groups_are_named_by_their_outermost_non_runtime_frame():
    entries = parse_goroutine_text(REAL).by_entry()
    assert entries["net/http.(*persistConn).readLoop"] == 137
    assert entries["net/http.(*persistConn).writeLoop"] == 137
    assert entries["net/http.(*conn).serve"] == 137


def test_growth_lists_changes_largest_first():
    base = GoroutineDump(
        3,
        (
            GoroutineGroup(2, ("runtime.gopark", "main.worker")),
            GoroutineGroup(1, ("runtime.gopark", "main.main")),
        ),
    )
    new = GoroutineDump(
        50,
        (
            GoroutineGroup(49, ("runtime.gopark", "main.worker")),
            GoroutineGroup(1, ("runtime.gopark", "main.poll")),
        ),
    )
    assert goroutine_growth(base, new) == [("main.worker", 47), ("main.poll", 1), ("main.main", -1)]


def test_debug2_output_gets_a_hint():
    with pytest.raises(InvalidProfile, match="debug=2"):
        parse_goroutine_text(b"goroutine 1 [running]:\nmain.main()\n")


def test_html_is_rejected():
    with pytest.raises(InvalidProfile, match="goroutine profile in debug=1"):
        parse_goroutine_text(b"<html><body>not found</body></html>")
