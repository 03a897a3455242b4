"""The C kernels (pprof/_kernels.c) against the numpy steps they replace.

Every kernel must give exactly what numpy gives (same values, same dtypes) or None, leaving
the decision to numpy. Compared on every protobuf profile of the shared corpus, on generated
profiles in any field layout, and on corrupt bytes; numpy's side is the same code with the
kernels switched off.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomforensics.pprof import kernels, profile_pb2
from oomforensics.pprof.errors import ProfileError
from oomforensics.pprof.fields import Messages
from oomforensics.pprof.legacy import read_profile
from oomforensics.pprof.model import Profile
from oomforensics.pprof.profile import parse_profile
from oomforensics.pprof.stacks import _multipliers, index_stacks, joint_names
from oomforensics.pprof.vectorised import _decode_locations, _decode_samples
from tests.support.gopprof import corpus, corpus_available
from tests.unit.pprof.test_vectorised_decoding import (
    build,
    corrupt_profiles,
    drops,
    reencode,
    samples,
)

# `make setup` builds the kernels (and stops when it cannot): only switched off on purpose
# (OOMF_KERNELS=0, numpy alone) are they not tested. Unbuilt, these tests fail.
SWITCHED_OFF = os.environ.get("OOMF_KERNELS", "1") == "0"
pytestmark = pytest.mark.skipif(SWITCHED_OFF, reason="OOMF_KERNELS=0: the C kernels are off")


@contextmanager
def numpy_only() -> Iterator[None]:
    saved = kernels._C
    kernels._C = None
    try:
        yield
    finally:
        kernels._C = saved


def test_the_development_install_builds_the_kernels() -> None:
    # `make setup` installs with a C compiler: a build that silently fell back to numpy (the
    # extension is optional for users without one) would leave the CLI nearly twice as slow.
    assert kernels.available(), "the C kernels are not built: install a C compiler, make setup"


def decoded(raw: bytes) -> Profile | str:
    try:
        return read_profile(raw)[0]
    except ProfileError as exc:
        return f"{type(exc).__name__}: {exc}"


def both(raw: bytes) -> tuple[Profile | str, Profile | str]:
    fast = decoded(raw)
    with numpy_only():
        plain = decoded(raw)
    return fast, plain


def assert_same_arrays(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    assert np.array_equal(a, b)


def assert_same_profile(fast: Profile | str, plain: Profile | str) -> None:
    if isinstance(plain, str) or isinstance(fast, str):
        assert fast == plain
        return
    a, b = fast.samples, plain.samples
    assert a.names == b.names
    assert_same_arrays(a.offsets, b.offsets)
    assert_same_arrays(a.frames, b.frames)
    assert_same_arrays(a.values, b.values)
    assert fast.full_names == plain.full_names
    for index in range(a.width):
        table = a.function_table(index)
        with numpy_only():
            expected = b.function_table(index)
        for got, want in zip(table, expected, strict=True):
            # numpy adds a deep stack's frames in Python ints when their sum could overflow
            # int64 before the repeats are taken back; the kernel counts each once (no sum
            # exceeds the column's, which fits), so it stays int64.
            if want.dtype == object:
                assert got.dtype in (np.int64, want.dtype)
                assert got.tolist() == want.tolist()
            else:
                assert_same_arrays(got, want)
    multipliers = _multipliers(max(int(np.diff(a.offsets).max(initial=0)), 127))
    hashes = kernels.stack_hashes(a.offsets, a.frames, multipliers)
    assert hashes is not None
    with numpy_only():
        from oomforensics.pprof.stacks import _hashes

        assert_same_arrays(hashes, _hashes(b, b.frames, multipliers))


def assert_same_grouping(fast: tuple[Profile, Profile], plain: tuple[Profile, Profile]) -> None:
    got = index_stacks([p.samples for p in fast])
    with numpy_only():
        want = index_stacks([p.samples for p in plain])
    assert_same_arrays(got.group, want.group)
    assert_same_arrays(got.first, want.first)


# --- the shared corpus ------------------------------------------------------------------------

CORPUS_PROFILES = (
    [f for f in corpus() if f.protobuf and f.pprof_reads_it] if corpus_available() else []
)


@pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus")
@pytest.mark.parametrize("entry", CORPUS_PROFILES, ids=lambda f: f.name)
def test_real_profiles_decode_the_same_with_the_kernels(entry) -> None:
    raw = entry.path.read_bytes()
    fast, plain = both(raw)
    assert not isinstance(fast, str), fast
    assert_same_profile(fast, plain)
    view = profile_pb2.ProfileView()
    view.ParseFromString(_gunzipped(raw))
    # The kernels themselves answered (real writers' encodings are theirs to decode).
    width = len(view.sample_type)
    got = kernels.decode_samples(list(view.sample), width)
    assert got is not None
    want = _decode_samples(list(view.sample), width)
    assert np.array_equal(got.location_ids, want.location_ids)
    assert_same_arrays(got.offsets, want.offsets)
    assert np.array_equal(got.values, want.values)
    lines = kernels.decode_locations(list(view.location))
    assert lines is not None
    expected = _decode_locations(list(view.location))
    for name in ("ids", "mapping_ids", "line_offsets", "function_ids"):
        assert_same_arrays(getattr(lines, name), getattr(expected, name))


@pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus")
def test_real_pairs_group_their_stacks_the_same_with_the_kernels() -> None:
    heaps = [f for f in CORPUS_PROFILES if "inuse_space" in f.sample_types]
    assert len(heaps) >= 2
    for base, new in itertools.pairwise(heaps):
        fast = tuple(decoded(f.path.read_bytes()) for f in (base, new))
        with numpy_only():
            plain = tuple(decoded(f.path.read_bytes()) for f in (base, new))
        assert_same_grouping(fast, plain)  # type: ignore[arg-type]


def _gunzipped(raw: bytes) -> bytes:
    from oomforensics.pprof.compression import gunzip_bounded, is_gzip

    return gunzip_bounded(raw) if is_gzip(raw) else raw


# --- generated profiles -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(sample_list=samples, drop=drops, seed=st.integers(0, 2**32), unknown=st.booleans())
def test_any_field_layout_decodes_the_same_with_the_kernels(sample_list, drop, seed, unknown):
    raw = reencode(build(sample_list, drop), random.Random(seed), unknown=unknown)
    fast, plain = both(raw)
    assert_same_profile(fast, plain)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corrupt_profiles())
def test_corrupt_bytes_decode_the_same_with_the_kernels(data):
    fast, plain = both(data)
    assert_same_profile(fast, plain)


@settings(max_examples=100, deadline=None)
@given(sample_list=samples.filter(bool), seed=st.integers(0, 2**32), keep=st.floats(0, 1))
def test_pairs_group_their_stacks_the_same_with_the_kernels(sample_list, seed, keep):
    rng = random.Random(seed)
    shuffled = list(sample_list)
    rng.shuffle(shuffled)
    raws = (
        reencode(build(sample_list), rng),
        reencode(build(shuffled[: max(1, int(keep * len(shuffled)))]), rng),
    )
    fast = tuple(parse_profile(raw) for raw in raws)
    with numpy_only():
        plain = tuple(parse_profile(raw) for raw in raws)
    assert_same_grouping(fast, plain)  # type: ignore[arg-type]


# --- what the kernels leave to numpy ----------------------------------------------------------


def test_an_unknown_field_is_left_to_numpy() -> None:
    sample = bytes([0x08, 0x01, 0x10, 0x05, 0x48, 0x01])  # location 1, value 5, field 9
    assert kernels.decode_samples([sample], 1) is None
    assert kernels.decode_samples([sample[:4]], 1) is not None


def test_a_sample_with_the_wrong_number_of_values_is_left_to_numpy() -> None:
    assert kernels.decode_samples([bytes([0x08, 0x01, 0x10, 0x05])], 2) is None


def test_a_truncated_varint_is_left_to_numpy() -> None:
    assert kernels.decode_samples([bytes([0x08, 0x81])], 0) is None
    assert kernels.decode_locations([bytes([0x08, 0x81])]) is None


def test_64_bit_location_ids_come_back_wide() -> None:
    big = 2**40 + 3
    encoded = bytearray([0x08])
    value = big
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    got = kernels.decode_samples([bytes([0x08, 0x01]), bytes(encoded)], 0)
    assert got is not None
    assert got.location_ids.dtype == np.uint64
    assert got.location_ids.tolist() == [1, big]
    assert got.offsets.tolist() == [0, 1, 2]


def test_python_int_values_are_left_to_numpy() -> None:
    column = np.array([2**62, 2**62], dtype=object)
    offsets = np.array([0, 1, 2], dtype=np.intp)
    frames = np.array([0, 0], dtype=np.int32)
    assert kernels.function_table(offsets, frames, column, 1) is None


def test_a_recursive_stack_counts_once_in_cum() -> None:
    offsets = np.array([0, 3, 4], dtype=np.intp)
    frames = np.array([0, 1, 0, 1], dtype=np.int32)  # a -> b -> a, then b alone
    column = np.array([5, 0], dtype=np.int64)
    table = kernels.function_table(offsets, frames, column, 3)
    assert table is not None
    flat, cum, present = table
    assert flat.tolist() == [5, 0, 0]
    assert cum.tolist() == [5, 5, 0]
    assert present.tolist() == [True, True, False]


def test_samples_decode_straight_to_frames_inlined_ones_included() -> None:
    table = np.array([-1, 0, 1], dtype=np.int32)  # ids 1 and 2: locations 0 and 1
    frame_offsets = np.array([0, 1, 3], dtype=np.intp)  # location 1 has two frames
    nodes = np.array([5, 6, 7], dtype=np.int32)
    samples = [bytes([0x0A, 0x02, 0x01, 0x02, 0x10, 0x09]), bytes([0x08, 0x02, 0x10, 0x03])]
    got = kernels.decode_sample_frames(samples, 1, table, frame_offsets, nodes)
    assert got is not None
    assert got.offsets.tolist() == [0, 3, 5]
    assert got.frames.tolist() == [5, 6, 7, 6, 7]
    assert got.values.tolist() == [[9], [3]]
    unknown_id = [bytes([0x08, 0x03, 0x10, 0x01])]
    assert kernels.decode_sample_frames(unknown_id, 1, table, frame_offsets, nodes) is None


def test_more_sample_types_than_the_samples_have_bytes_for_is_left_to_numpy() -> None:
    # 2 samples of 4 bytes cannot hold 10**12 values each: no room is made for them.
    samples = [bytes([0x08, 0x01, 0x10, 0x05])] * 2
    assert kernels.decode_samples(samples, 10**12) is None
    table, offsets, nodes = (
        np.array(a, dtype=t) for a, t in (([-1, 0], np.int32), ([0, 1], np.intp), ([3], np.int32))
    )
    assert kernels.decode_sample_frames(samples, 10**12, table, offsets, nodes) is None


# --- the top level, without protobuf ----------------------------------------------------------


def fields_of(view: object) -> dict[str, object]:
    """What the decoders read of a profile's top level, from upb's view or the kernels'."""
    v: Any = view
    return {
        "sample_type": [(t.type, t.unit) for t in v.sample_type],
        "sample": list(v.sample),
        "mapping": [(m.id, m.filename) for m in v.mapping],
        "location": list(v.location),
        "function": [(f.id, f.name, f.system_name) for f in v.function],
        "string_table": list(v.string_table),
        "scalars": (v.drop_frames, v.keep_frames, v.time_nanos, v.duration_nanos, v.period),
        "default_sample_type": v.default_sample_type,
        "period_type": (v.HasField("period_type"), v.period_type.type, v.period_type.unit),
        "comment": list(v.comment),
    }


def upb_fields(raw: bytes) -> dict[str, object] | None:
    view = profile_pb2.ProfileView()
    try:
        view.ParseFromString(raw)
    except DecodeError:
        return None
    return fields_of(view)


@pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus")
def test_real_profiles_split_as_upb_reads_them() -> None:
    for entry in CORPUS_PROFILES:
        raw = _gunzipped(entry.path.read_bytes())
        parts = kernels.split_profile(raw)
        assert parts is not None, entry.name  # real writers' encodings are the kernels' to split
        assert fields_of(parts) == upb_fields(raw), entry.name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corrupt_profiles())
def test_any_bytes_split_as_upb_reads_them_or_are_left_to_upb(data: bytes) -> None:
    parts = kernels.split_profile(data)
    if parts is not None:
        assert fields_of(parts) == upb_fields(data)


@settings(max_examples=200, deadline=None)
@given(sample_list=samples, drop=drops, seed=st.integers(0, 2**32))
def test_generated_profiles_split_as_upb_reads_them(sample_list, drop, seed) -> None:
    builder = build(sample_list, drop)
    builder._message.comment.extend([builder._s("a comment"), builder._s("another")])
    raw = reencode(builder, random.Random(seed))
    parts = kernels.split_profile(raw)
    assert parts is not None
    assert fields_of(parts) == upb_fields(raw)


def test_period_type_given_twice_is_left_to_upb() -> None:
    period = bytes([0x5A, 0x04, 0x08, 0x01, 0x10, 0x02])  # field 11: type 1, unit 2
    assert kernels.split_profile(period) is not None
    assert kernels.split_profile(period + period) is None  # upb merges the two


def test_an_unknown_top_level_field_is_left_to_upb() -> None:
    assert kernels.split_profile(bytes([0x60, 0x05])) is not None  # period = 5
    assert kernels.split_profile(bytes([0x80, 0x01, 0x05])) is None  # field 16


# --- messages as spans of the profile's bytes ---------------------------------------------------


def _decoded_both_ways(parts: Any, width: int) -> None:
    """Each kernel gives the same from the split's spans as from a list of the same bytes."""
    spans_samples = kernels.decode_samples(parts.sample, width)
    listed_samples = kernels.decode_samples(list(parts.sample), width)
    assert (spans_samples is None) == (listed_samples is None)
    if spans_samples is not None and listed_samples is not None:
        for got, want in zip(spans_samples, listed_samples, strict=True):
            assert_same_arrays(got, want)
    spans_lines = kernels.decode_locations(parts.location)
    listed_lines = kernels.decode_locations(list(parts.location))
    assert (spans_lines is None) == (listed_lines is None)
    if spans_lines is not None and listed_lines is not None:
        for got, want in zip(spans_lines, listed_lines, strict=True):
            assert_same_arrays(got, want)


@settings(max_examples=100, deadline=None)
@given(sample_list=samples, drop=drops, seed=st.integers(0, 2**32))
def test_split_messages_decode_in_place_as_their_bytes_do(sample_list, drop, seed) -> None:
    raw = reencode(build(sample_list, drop), random.Random(seed))
    parts = kernels.split_profile(raw)
    assert parts is not None
    assert isinstance(parts.sample, Messages)
    _decoded_both_ways(parts, len(parts.sample_type))


@pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus")
def test_real_profiles_decode_in_place_as_their_bytes_do() -> None:
    for entry in CORPUS_PROFILES:
        parts = kernels.split_profile(_gunzipped(entry.path.read_bytes()))
        assert parts is not None, entry.name
        _decoded_both_ways(parts, len(parts.sample_type))


def test_messages_are_a_sequence_of_their_bytes() -> None:
    sample_list = [([["main.a", "main.b"]], (1, 2, 3, 4), 0), ([["main.c"]], (5, 6, 7, 8), 64)]
    raw = build(sample_list).serialize(compress=False)
    parts = kernels.split_profile(raw)
    assert parts is not None
    view = profile_pb2.ProfileView()
    view.ParseFromString(raw)
    messages, expected = parts.sample, list(view.sample)
    assert len(messages) == len(expected) == 2
    assert list(messages) == expected
    assert [messages[0], messages[-1]] == [expected[0], expected[-1]]
    assert messages[::-1] == expected[::-1]
    with pytest.raises(IndexError):
        messages[2]
    with pytest.raises(IndexError):
        messages[-3]


def test_spans_outside_the_data_are_refused() -> None:
    assert kernels._C is not None
    for bounds in ([0, 11], [5, 4], [-1, 2]):
        with pytest.raises(ValueError, match="outside the data"):
            kernels._C.decode_locations((b"0123456789", np.array(bounds, dtype=np.intp).data))
    with pytest.raises(TypeError, match="pairs of intp"):
        kernels._C.decode_samples((b"0123456789", bytearray(12)), 1)


# --- frames translated into a joint table -------------------------------------------------------


def test_translate_writes_into_the_array_it_is_given() -> None:
    table = np.array([7, 5, 3], dtype=np.int32)
    nodes = np.array([2, 0, 0, 1], dtype=np.int32)
    joint = np.full(6, -9, dtype=np.int32)
    got = kernels.translate(table, nodes, out=joint[1:5])
    assert got.base is joint
    assert joint.tolist() == [-9, 3, 7, 7, 5, -9]  # only its slice written
    assert kernels.translate(table, nodes).tolist() == np.take(table, nodes).tolist()
    with numpy_only():
        assert kernels.translate(table, nodes, out=joint[:4]).tolist() == [3, 7, 7, 5]
    assert kernels._C is not None
    with pytest.raises(ValueError, match="as many"):
        kernels._C.translate(table, nodes, np.zeros(3, dtype=np.int32))


def test_a_diff_and_its_stack_index_share_one_table_of_names() -> None:
    base = parse_profile(build([([["main.a"], ["main.main"]], (1, 2, 3, 4), 0)]).serialize())
    new = parse_profile(build([([["main.b"], ["main.a"]], (5, 6, 7, 8), 0)]).serialize())
    joint = joint_names([base.samples, new.samples])
    assert joint is joint_names([base.samples, new.samples])  # kept with the base
    index = index_stacks([base.samples, new.samples])
    assert index.names == joint.names
    assert joint.names[: len(base.samples.names)] == base.samples.names
    assert set(joint.names) == set(base.samples.names) | set(new.samples.names)
    numbers = joint.numbers[1]
    assert numbers is not None
    assert [joint.names[k] for k in numbers.tolist()] == list(new.samples.names)
    stacks = {index.stack(g) for g in range(len(index))}
    assert len(stacks) == len(index) == 2
    assert stacks == {
        *(base.samples.stack(i) for i in range(len(base.samples))),
        *(new.samples.stack(i) for i in range(len(new.samples))),
    }
