"""The vectorised decoder against the message-by-message one, on every encoding we can think of.

`parse_profile` decodes samples and locations with numpy (`wire`) and hands anything unusual to
the message-by-message decoder (`_build`, the reference). Whatever the bytes, both must give the
same samples (stack of names and values, in order) or the same error; and for the encodings
real writers produce (Go's runtime, pprof, protobuf libraries) the vectorised path must be the
one that answers.
"""

from __future__ import annotations

import random

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomforensics.pprof import profile_pb2
from oomforensics.pprof.careful import build_careful
from oomforensics.pprof.errors import InvalidProfile
from oomforensics.pprof.header import describe
from oomforensics.pprof.profile import Profile, parse_profile
from oomforensics.pprof.vectorised import build_vectorised
from tests.support.profiles import ProfileBuilder

NAMES = [
    "main.main",
    "main.handle",
    "main.(*cache).put",
    "github.com/acme/api.(*LRU).Put",
    "net/http.(*conn).serve",
    "runtime.mallocgc",
    "runtime.newobject",
    "bytes.growSlice",
    "encoding/json.(*decodeState).object",
    "",  # a line without a function name
]
INT64 = st.integers(-(2**63), 2**63 - 1)
VALUES = st.one_of(st.integers(0, 5000), st.integers(0, 2**40), INT64)
frames = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)
stacks = st.lists(frames, min_size=0, max_size=14)
samples = st.lists(
    st.tuples(stacks, st.tuples(VALUES, VALUES, VALUES, VALUES), st.integers(0, 2**20)),
    min_size=0,
    max_size=30,
)
drops = st.sampled_from(
    [("", ""), ("runtime\\..*", ""), ("runtime\\..*", "runtime\\.newobject"), ("main\\.main", "")]
)


def build(sample_list, drop=("", "")) -> ProfileBuilder:
    builder = ProfileBuilder(drop_frames=drop[0], keep_frames=drop[1])
    for stack, values, label in sample_list:
        builder.sample(stack, *values, size_label=label)
    return builder


def rows(profile: Profile) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    s = profile.samples
    return [(s.stack(i), tuple(s.values[i].tolist())) for i in range(len(s))]


def reference(raw: bytes) -> object:
    view = profile_pb2.ProfileView()
    try:
        view.ParseFromString(raw)
    except DecodeError:
        return ("error", f"not a pprof profile ({describe(raw)})")
    try:
        return rows(build_careful(view, raw))
    except InvalidProfile as exc:
        return ("error", str(exc))


def outcome(raw: bytes) -> object:
    try:
        return rows(parse_profile(raw))
    except InvalidProfile as exc:
        return ("error", str(exc))


def vectorised(raw: bytes) -> Profile:
    """Decode with the vectorised path only (raises if it would hand over)."""
    view = profile_pb2.ProfileView()
    view.ParseFromString(raw)
    return build_vectorised(view, raw)


@settings(max_examples=300, deadline=None)
@given(sample_list=samples, drop=drops)
def test_builder_profiles_decode_vectorised_exactly(sample_list, drop):
    raw = build(sample_list, drop).serialize(compress=False)
    expected = reference(raw)
    assert rows(vectorised(raw)) == expected
    assert outcome(raw) == expected


# --- hand-made encodings ---------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= 2**64 - 1
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def overlong(n: int, extra: int) -> bytes:
    """`n` as a varint padded with `extra` redundant zero groups (upb accepts up to 10 bytes)."""
    plain = bytearray(varint(n))
    if len(plain) + extra > 10:
        return bytes(plain)
    plain[-1] |= 0x80
    plain += b"\x80" * (extra - 1) + b"\x00"
    return bytes(plain)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def scalar(number: int, value: int, rng: random.Random) -> bytes:
    encoded = overlong(value, rng.randint(1, 3)) if rng.random() < 0.1 else varint(value)
    return key(number, 0) + encoded


def delimited(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def repeated(number: int, values: list[int], rng: random.Random) -> list[bytes]:
    """A repeated varint field as one or more chunks: packed, unpacked or split."""
    style = rng.choice(["packed", "packed", "unpacked", "split", "mixed"])
    if style == "packed" or not values:
        return [delimited(number, b"".join(varint(v) for v in values))] if values else []
    if style == "unpacked":
        return [scalar(number, v, rng) for v in values]
    cut = rng.randint(0, len(values))
    head = delimited(number, b"".join(varint(v) for v in values[:cut]))
    if style == "split":
        return [head, delimited(number, b"".join(varint(v) for v in values[cut:]))]
    return [head, *(scalar(number, v, rng) for v in values[cut:])]


def encode_sample(sample: profile_pb2.Sample, rng: random.Random, unknown: bool) -> bytes:
    groups = [
        repeated(1, list(sample.location_id), rng),
        repeated(2, list(sample.value), rng),
        [encode_label(label, rng, unknown) for label in sample.label],
    ]
    rng.shuffle(groups)  # any field order: Go writes values first
    parts = [part for group in groups for part in group]
    if unknown and rng.random() < 0.5:
        parts.insert(rng.randint(0, len(parts)), scalar(9, rng.randint(0, 99), rng))
    return b"".join(parts)


def encode_label(label: profile_pb2.Label, rng: random.Random, unknown: bool) -> bytes:
    fields = [
        scalar(n, v, rng)
        for n, v in ((1, label.key), (2, label.str), (3, label.num), (4, label.num_unit))
        if v or rng.random() < 0.3
    ]
    rng.shuffle(fields)
    if unknown and rng.random() < 0.5:
        fields.append(scalar(7, 1, rng))
    return delimited(3, b"".join(fields))


def encode_location(location: profile_pb2.Location, rng: random.Random) -> bytes:
    lines = []
    for line in location.line:
        fields = [scalar(1, line.function_id, rng), scalar(2, line.line, rng)]
        if rng.random() < 0.3:
            fields.append(scalar(3, rng.randint(0, 80), rng))
        rng.shuffle(fields)
        lines.append(delimited(4, b"".join(fields)))
    scalars = [scalar(1, location.id, rng), scalar(3, location.address, rng)]
    if location.mapping_id or rng.random() < 0.3:
        scalars.append(scalar(2, location.mapping_id, rng))
    if rng.random() < 0.2:
        scalars.append(scalar(5, 0, rng))
    rng.shuffle(scalars)
    if rng.random() < 0.2:  # a repeated scalar: the last one counts
        scalars.insert(0, scalar(1, location.id + 1000, rng))
    if rng.random() < 0.5:  # Go's order: id, address, lines, mapping_id
        return scalars[0] + b"".join(lines) + b"".join(scalars[1:])
    return b"".join(scalars) + b"".join(lines)


def reencode(builder: ProfileBuilder, rng: random.Random, unknown: bool = False) -> bytes:
    """The builder's profile with samples and locations written by hand."""
    builder.serialize(compress=False)  # fills the string table
    message = profile_pb2.Profile()
    message.CopyFrom(builder._message)
    samples = [encode_sample(s, rng, unknown) for s in message.sample]
    locations = [encode_location(loc, rng) for loc in message.location]
    del message.sample[:]
    del message.location[:]
    fields = [delimited(2, s) for s in samples] + [delimited(4, loc) for loc in locations]
    if rng.random() < 0.5:
        rng.shuffle(fields)
    return message.SerializeToString() + b"".join(fields)


@settings(max_examples=300, deadline=None)
@given(sample_list=samples, drop=drops, seed=st.integers(0, 2**32))
def test_any_field_layout_decodes_vectorised_exactly(sample_list, drop, seed):
    raw = reencode(build(sample_list, drop), random.Random(seed))
    expected = reference(raw)
    assert not isinstance(expected, tuple)
    assert rows(vectorised(raw)) == expected
    assert outcome(raw) == expected


@settings(max_examples=100, deadline=None)
@given(sample_list=samples, seed=st.integers(0, 2**32))
def test_unknown_fields_are_handed_over_and_decode_the_same(sample_list, seed):
    raw = reencode(build(sample_list), random.Random(seed), unknown=True)
    assert outcome(raw) == reference(raw)


@st.composite
def corrupt_profiles(draw: st.DrawFn) -> bytes:
    """A generated profile in any field layout with up to four bytes changed; one in five
    also cut short."""
    raw = bytearray(reencode(build(draw(samples.filter(bool))), random.Random(draw(SEEDS))))
    for where, byte in draw(EDITS):
        raw[int(where * len(raw))] = byte
    cut = draw(st.floats(0, 1))
    if cut < 0.2:
        raw = raw[: int(len(raw) * (0.8 + cut))]
    return bytes(raw)


SEEDS = st.integers(0, 2**32)
EDITS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corrupt_profiles())
def test_corrupt_bytes_give_the_same_profile_or_the_same_error(data):
    assert outcome(data) == reference(data)


# --- corner cases ----------------------------------------------------------------------------


def test_go_runtime_layout_is_decoded_vectorised():
    # runtime/pprof writes a sample's values before its location ids, then the bytes label,
    # and a location's id, address and lines before its mapping id.
    builder = ProfileBuilder()
    builder.sample(
        [["bytes.growSlice"], ["main.appendAudit", "main.log"], ["main.main"]], 1, 2, 3, 4
    )
    builder.sample([["runtime.malg"], ["runtime.newproc1"]], 5, 6, 7, 8, size_label=64)
    builder.serialize(compress=False)
    message = builder._message
    samples = [
        delimited(2, b"".join(varint(v) for v in s.value))
        + delimited(1, b"".join(varint(i) for i in s.location_id))
        + b"".join(
            delimited(3, key(1, 0) + varint(lb.key) + key(3, 0) + varint(lb.num)) for lb in s.label
        )
        for s in message.sample
    ]
    locations = [
        key(1, 0)
        + varint(loc.id)
        + key(3, 0)
        + varint(loc.address)
        + b"".join(
            delimited(4, key(1, 0) + varint(ln.function_id) + key(2, 0) + varint(ln.line))
            for ln in loc.line
        )
        + key(2, 0)
        + varint(loc.mapping_id)
        for loc in message.location
    ]
    bare = profile_pb2.Profile()
    bare.CopyFrom(message)
    del bare.sample[:]
    del bare.location[:]
    raw = (
        bare.SerializeToString()
        + b"".join(delimited(2, s) for s in samples)
        + b"".join(delimited(4, loc) for loc in locations)
    )
    assert (
        rows(vectorised(raw))
        == reference(raw)
        == [
            (("bytes.growSlice", "main.appendAudit", "main.log", "main.main"), (1, 2, 3, 4)),
            (("runtime.malg", "runtime.newproc1"), (5, 6, 7, 8)),
        ]
    )


def test_large_and_sparse_ids_values_and_negative_numbers():
    builder = ProfileBuilder()
    builder.sample([["main.a"], ["main.main"]], -1, 2**62, -(2**63), 2**63 - 1)
    builder.sample([["main.b"], ["main.main"]], 2**31, 2**35, 1, 0)
    builder.serialize(compress=False)
    for i, location in enumerate(builder._message.location):
        new_id = (1 << 40) + 977 * i if i % 2 else (1 << 28) + i
        for sample in builder._message.sample:
            ids = [new_id if x == location.id else x for x in sample.location_id]
            sample.ClearField("location_id")
            sample.location_id.extend(ids)
        location.id = new_id
    raw = builder._message.SerializeToString()
    expected = reference(raw)
    assert rows(vectorised(raw)) == expected
    assert [v for _, v in expected] == [(-1, 2**62, -(2**63), 2**63 - 1), (2**31, 2**35, 1, 0)]
    profile = parse_profile(raw)
    assert profile.total(2) == -(2**63) + 1  # exact, past what int64 can add up
    assert profile.samples.values.dtype == object


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.sample[0].location_id.append(999),
        lambda m: m.sample[0].value.pop(),
        lambda m: setattr(m.location[1].line[1], "function_id", 4242),
        lambda m: setattr(m.location[0], "mapping_id", 7),
        lambda m: setattr(m.function[0], "name", 10**6),
        lambda m: m.location.add(id=1, mapping_id=1),  # a duplicate location id
        lambda m: m.function.add(id=1, name=1),  # a duplicate function id
        lambda m: setattr(m.mapping[0], "id", 0),  # unsymbolized frames named after mapping 0
        lambda m: m.sample.add(),  # a sample with nothing
    ],
)
def test_semantic_errors_and_oddities_match_the_reference(mutate):
    builder = ProfileBuilder()
    builder.sample([[""], ["main.a", "main.b"], ["main.main"]], 1, 2, 3, 4)
    builder.sample([["runtime.malg"]], 5, 6, 7, 8)
    builder.serialize(compress=False)
    for location in builder._message.location:
        location.mapping_id = 0 if location.id == 1 else location.mapping_id
    mutate(builder._message)
    raw = builder._message.SerializeToString()
    assert outcome(raw) == reference(raw)
