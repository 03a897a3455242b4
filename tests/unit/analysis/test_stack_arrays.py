"""The array-based analysis against the dict-of-tuples code it replaced (support/reference.py),
on generated profile pairs: recursion, inlining, unsymbolized frames, negative and huge values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oomforensics.analysis import connection_findings
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import (
    StackGrowth,
    find_suspects,
    growth_paths,
    stack_growth,
)
from oomforensics.pprof.diff import BaseMode, _report_total, diff_profiles, function_table
from oomforensics.pprof.profile import Profile, SampleType, index_stacks, parse_profile
from tests.support import reference
from tests.support.profiles import ProfileBuilder

NAMES = [
    "main.main",
    "main.fetchReport",
    "main.(*cache).put",
    "github.com/acme/api.(*LRU).Put",
    "net/http.(*Client).Do",
    "net/http.(*Client).do",
    "net/http.(*Transport).dialConn",
    "net/http.(*persistConn).readLoop",
    "crypto/tls.(*Conn).Handshake",
    "bufio.NewReaderSize",
    "bytes.growSlice",
    "runtime.malg",
    "runtime.goexit",
    "internal/poll.(*FD).Read",
    "",
]
SMALL = st.integers(-3000, 3000)
HUGE = st.integers(-(2**63), 2**63 - 1)
frames = st.lists(st.sampled_from(NAMES), min_size=1, max_size=2)
stacks = st.lists(frames, min_size=0, max_size=10)


def samples(values: st.SearchStrategy[int]) -> st.SearchStrategy[list]:
    return st.lists(st.tuples(stacks, st.tuples(values, values, values, values)), max_size=25)


pairs = st.one_of(
    st.tuples(samples(SMALL), samples(SMALL)),
    st.tuples(samples(st.integers(0, 10**6)), samples(st.integers(0, 10**6))),
    st.tuples(samples(HUGE), samples(HUGE)),
)


def profile(sample_list, shared=()) -> Profile:
    builder = ProfileBuilder()
    for stack, values in [*shared, *sample_list]:
        builder.sample(stack, *values)
    return parse_profile(builder.serialize())


def build_pair(pair):
    base_samples, new_samples = pair
    shared = base_samples[: len(base_samples) // 2]  # stacks in both, as in real pairs
    return profile(base_samples), profile(new_samples, shared)


@settings(max_examples=300, deadline=None)
@given(pair=pairs)
def test_function_tables_and_totals_equal_the_reference(pair):
    base, new = build_pair(pair)
    for index in range(4):
        for p in (base, new):
            assert function_table(p, index) == reference.function_table(p.stacks, index)
            assert p.total(index) == sum(v[index] for v in p.stacks.values())
        for mode in BaseMode:
            assert _report_total(base, new, index, mode) == reference.report_total(
                base.stacks, new.stacks, index, mode
            )


@settings(max_examples=300, deadline=None)
@given(pair=pairs, limit=st.integers(1, 6), share=st.sampled_from([0.0, 0.02, 0.3]))
def test_stack_growth_suspects_and_paths_equal_the_reference(pair, limit, share):
    base, new = build_pair(pair)
    growth = stack_growth(base, new)
    expected = reference.stack_growth(base.stacks, new.stacks, 3, 2)
    assert dict(growth) == expected
    assert len(growth) == len(expected)
    want = reference.find_suspects(expected, limit, share)
    assert find_suspects(growth, limit, share) == want
    assert find_suspects(expected, limit, share) == want  # a plain mapping works too
    assert growth_paths(growth, limit) == reference.growth_paths(expected, limit)
    assert growth_paths(expected, limit) == reference.growth_paths(expected, limit)


@settings(max_examples=200, deadline=None)
@given(pair=pairs)
def test_http_callers_equal_the_reference(pair):
    base, new = build_pair(pair)
    growth = stack_growth(base, new)
    index = new.sample_index("inuse_space")
    expected = reference.http_callers(dict(growth), new.stacks, index)
    assert connection_findings._http_callers(growth, Snapshot("new", new)) == expected


@settings(max_examples=200, deadline=None)
@given(pair=pairs)
def test_stacks_are_grouped_exactly(pair):
    base, new = build_pair(pair)
    index = index_stacks([base.samples, new.samples])
    names = []
    for part in (base.samples, new.samples):
        names += [part.stack(i) for i in range(len(part))]
    assert [index.stack(g) for g in index.group] == names
    # Equal stacks share a group, different stacks do not.
    assert len(index) == len(set(names))


def test_hash_collisions_are_caught_and_regrouped_exactly(monkeypatch):
    import oomforensics.pprof.stacks as profile_module

    base = profile([([["main.a"], ["main.b"]], (1, 1, 1, 1))])
    new = profile([([["main.b"], ["main.a"]], (2, 2, 2, 2))])
    # All multipliers 1: stacks with the same frames in another order hash alike, and the
    # frame-by-frame check must split them again.
    monkeypatch.setattr(profile_module, "_HASH_SEED", 0)
    real = np.random.default_rng

    class Zeros:
        def __init__(self, seed):
            self.rng = real(seed)

        def integers(self, low, high, size, dtype):
            return np.zeros(size, dtype=dtype)

    monkeypatch.setattr(profile_module.np.random, "default_rng", Zeros)
    exact = []
    regroup = profile_module._exact_groups
    monkeypatch.setattr(profile_module, "_exact_groups", lambda *a: exact.append(1) or regroup(*a))
    index = index_stacks([base.samples, new.samples])
    assert exact and len(index) == 2
    assert dict(stack_growth(base, new)) == {
        ("main.a", "main.b"): (-1, -1),
        ("main.b", "main.a"): (2, 2),
    }


def test_recursion_counts_once_per_sample_in_cum():
    p = profile(
        [
            (
                [["main.walk"], ["main.walk"], ["main.visit"], ["main.walk"], ["main.main"]],
                (0, 0, 0, 7),
            ),
            ([["main.walk", "main.walk"], ["main.main"]], (0, 0, 0, 5)),
        ]
    )
    assert function_table(p, 3) == {
        "main.walk": (12, 12),
        "main.visit": (0, 7),
        "main.main": (0, 12),
    }


def test_from_stacks_and_equality():
    types = (SampleType("inuse_objects", "count"), SampleType("inuse_space", "bytes"))
    built = Profile.from_stacks(types, {("main.a", "main.main"): (1, 10), (): (0, 3)})
    assert built.stacks == {("main.a", "main.main"): (1, 10), (): (0, 3)}
    assert built == Profile.from_stacks(types, {(): (0, 3), ("main.a", "main.main"): (1, 10)})
    assert built.total(1) == 13
    assert diff_profiles(built, built, "inuse_space").functions == ()


def test_stack_growth_is_a_read_only_mapping():
    growth = StackGrowth.from_mapping({("main.a",): (5, 1), ("main.b", "main.a"): (-2, 0)})
    assert len(growth) == 2 and ("main.a",) in growth and growth[("main.a",)] == (5, 1)
    assert sorted(growth) == [("main.a",), ("main.b", "main.a")]
    assert growth == {("main.a",): (5, 1), ("main.b", "main.a"): (-2, 0)}
