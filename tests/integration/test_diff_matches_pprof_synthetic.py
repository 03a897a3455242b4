"""Our diff equals `go tool pprof -top` on generated profiles that exercise every corner:
inlined frames, recursion, unsymbolized frames, Go method names, pprof's own pruning."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomforensics.pprof.diff import BaseMode, diff_profiles
from oomforensics.pprof.profile import parse_profile
from tests.support.gopprof import pprof_top
from tests.support.profiles import ProfileBuilder

pytestmark = pytest.mark.gotool

NAMES = [
    "main.main",
    "main.appendAudit",
    "main.(*cache).put",
    "net/http.(*persistConn).readLoop",
    "crypto/tls.(*Conn).readRecordOrCCS",
    "bufio.NewReaderSize",
    "bytes.growSlice",
    "runtime.malg",
    "runtime.newproc1",
    "sync.NewCond",
    "",  # an unsymbolized frame
]

frames = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)
stacks = st.lists(frames, min_size=1, max_size=7)
values = st.tuples(*(st.integers(0, 5_000_000) for _ in range(4)))
samples = st.lists(st.tuples(stacks, values), min_size=1, max_size=25)
drops = st.sampled_from(["", "runtime\\..*", "bytes\\.growSlice|main\\.main"])


def write(tmp: Path, name: str, sample_list, drop: str) -> Path:
    builder = ProfileBuilder(drop_frames=drop)
    for stack, vals in sample_list:
        builder.sample(stack, *vals)
    path = tmp / name
    path.write_bytes(builder.serialize())
    return path


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=samples,
    new=samples,
    drop=drops,
    index=st.sampled_from(["inuse_space", "inuse_objects", "alloc_space"]),
    mode=st.sampled_from(list(BaseMode)),
)
def test_generated_profiles_diff_exactly_like_pprof(tmp_path, base, new, drop, index, mode):
    base_path = write(tmp_path, "base.pb.gz", base, drop)
    new_path = write(tmp_path, "new.pb.gz", new, drop)

    ours = diff_profiles(
        parse_profile(base_path.read_bytes()), parse_profile(new_path.read_bytes()), index, mode
    )
    theirs = pprof_top(base_path, new_path, index, mode.value)

    assert [(f.name, f.flat, f.cum) for f in ours.functions] == [
        (r.name, r.flat, r.cum) for r in theirs
    ]


# Recursion-heavy: deep stacks over a few functions (encoding/json, a tree walk), recursion
# both across locations and inside one location's inlined frames, so a function is on a stack
# many times and must count once in cum.
RECURSIVE = [
    "main.walk",
    "main.visit",
    "encoding/json.(*decodeState).value",
    "encoding/json.(*decodeState).object",
    "main.main",
    "runtime.mallocgc",
    "",
]
recursive_frames = st.lists(st.sampled_from(RECURSIVE), min_size=1, max_size=4)
recursive_stacks = st.lists(recursive_frames, min_size=1, max_size=40)
recursive_samples = st.lists(st.tuples(recursive_stacks, values), min_size=1, max_size=40)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=recursive_samples,
    new=recursive_samples,
    drop=st.sampled_from(["", "runtime\\..*", "main\\.visit"]),
    mode=st.sampled_from(list(BaseMode)),
)
def test_recursive_profiles_diff_exactly_like_pprof(tmp_path, base, new, drop, mode):
    base_path = write(tmp_path, "base.pb.gz", base, drop)
    new_path = write(tmp_path, "new.pb.gz", new, drop)

    ours = diff_profiles(
        parse_profile(base_path.read_bytes()), parse_profile(new_path.read_bytes()), None, mode
    )
    theirs = pprof_top(base_path, new_path, "inuse_space", mode.value)

    assert [(f.name, f.flat, f.cum) for f in ours.functions] == [
        (r.name, r.flat, r.cum) for r in theirs
    ]
