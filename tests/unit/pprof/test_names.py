"""Function names as `go tool pprof` prints them, invalid UTF-8 included, and pprof's default
sample index and merge check for a pair."""

import gzip

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from oomforensics.pprof import profile_pb2
from oomforensics.pprof.diff import diff_profiles, pair_sample_index
from oomforensics.pprof.errors import IncompatibleProfiles, InvalidProfile
from oomforensics.pprof.names import pprof_name, pprof_names, remove_matching
from oomforensics.pprof.profile import parse_profile
from tests.support.profiles import ProfileBuilder

HMAC = "crypto/internal/fips140/hmac.New[go.shape.interface { BlockSize() int; Reset() }]"


@pytest.mark.parametrize(
    ("system_name", "shown"),
    [
        # Go generic instantiations look like demangled C++ to pprof: () groups go.
        (HMAC, "crypto/internal/fips140/hmac.New[go.shape.interface { BlockSize int; Reset }]"),
        (
            "slices.Clone[go.shape.[]string,go.shape.string]",
            "slices.Clone[go.shape.[]string,go.shape.string]",
        ),
        # Methods of generic types are left alone ("])." in the name).
        (
            "sync/atomic.(*Pointer[...]).CompareAndSwap",
            "sync/atomic.(*Pointer[...]).CompareAndSwap",
        ),
        # Ordinary Go names have no brackets: unchanged, receivers' parentheses included.
        ("net/http.(*conn).serve", "net/http.(*conn).serve"),
        # C++: parameters and template arguments go.
        ("std::vector<int>::push_back(int const&)", "std::vector::push_back"),
        # Java's constructors are not C++.
        ("java.util.ArrayList.<init>", "java.util.ArrayList.<init>"),
    ],
)
def test_names_are_simplified_as_pprof_does(system_name: str, shown: str) -> None:
    assert pprof_name(system_name, system_name) == shown


def test_a_name_chosen_by_the_writer_is_kept_and_an_empty_one_comes_from_the_system_name() -> None:
    # parca's profiles: Name "..Clone", SystemName "(*page[...]).Clone".
    assert pprof_name("parquet-go..Clone", "parquet-go.(*page[...]).Clone") == "parquet-go..Clone"
    assert pprof_name("", "f[x(y)]") == "f[x]"
    assert pprof_name("main.leak", "") == "main.leak"


def test_remove_matching_stops_at_a_stray_closing_bracket_and_keeps_an_unclosed_group() -> None:
    assert remove_matching("a(b)c)d(e)", "(", ")") == "ac)d(e)"  # pprof returns the name so far
    assert remove_matching("f[x](y", "(", ")") == "f[x](y"
    assert remove_matching("f((a)(b))g(c)", "(", ")") == "fg"


def test_generic_names_in_a_profile_are_named_as_pprof_and_keep_their_full_name() -> None:
    builder = ProfileBuilder()
    builder.sample([[HMAC], ["main.main"]], 1, 64, 1, 64)
    profile = parse_profile(builder.serialize())
    short = pprof_name(HMAC, HMAC)
    assert profile.samples.stack(0) == (short, "main.main")
    assert profile.full_names == {short: HMAC}


def test_invalid_utf8_in_the_string_table_is_read_byte_for_byte() -> None:
    builder = ProfileBuilder()
    builder.sample([["main.PLACEHOLDER"]], 1, 64, 1, 64)
    raw = gzip.decompress(builder.serialize()).replace(b"PLACEHOLDER", b"bad\xff\xfe\nnames")
    profile = parse_profile(raw)
    (name,) = profile.samples.stack(0)
    assert name == "main.bad\udcff\udcfe\nnames"
    assert name.encode("utf-8", "surrogateescape") == b"main.bad\xff\xfe\nnames"


def heap(default: str = "", period: tuple[str, str] = ("space", "bytes")) -> bytes:
    builder = ProfileBuilder()
    builder.sample([["main.leak"]], 1, 10, 2, 20)
    message = builder._message
    message.default_sample_type = builder._s(default)
    message.period_type.type = builder._s(period[0])
    message.period_type.unit = builder._s(period[1])
    return builder.serialize()


def test_the_default_sample_index_is_pprofs() -> None:
    allocs, plain = parse_profile(heap("alloc_space")), parse_profile(heap(""))
    names = [st.type for st in plain.sample_types]
    # The merged profile's default: the new profile's, else the base's, else the last type.
    assert names[pair_sample_index(plain, allocs, None)] == "alloc_space"
    assert names[pair_sample_index(allocs, plain, None)] == "alloc_space"
    assert names[pair_sample_index(plain, plain, None)] == "inuse_space"
    assert diff_profiles(plain, allocs, None).sample_index == "alloc_space"


def test_period_types_of_different_kinds_are_refused_as_pprof_refuses_them() -> None:
    cpu = parse_profile(heap(period=("cpu", "nanoseconds")))
    wall = parse_profile(heap(period=("", "milliseconds")))
    with pytest.raises(IncompatibleProfiles, match="new has cpu/nanoseconds"):
        diff_profiles(wall, cpu, None)
    # Same kind, other unit: pprof scales them to one; the table is computed.
    assert diff_profiles(cpu, parse_profile(heap(period=("cpu", "milliseconds"))), None)


def test_profile_view_reads_strings_as_bytes() -> None:
    view = profile_pb2.ProfileView()
    view.ParseFromString(gzip.decompress(heap()))
    assert view.string_table[0] == b""


_NAME_PIECES = st.sampled_from(
    ["main.f", "(", ")", "<", ">", "[", "]", ":", "::", "\n", "])", ".<init>", "x", ""]
)
_A_NAME = st.lists(_NAME_PIECES, max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@example(pairs=[("main.f", "same"), ("std::f(int)", "same"), ("a:", "same"), (":b()", "same")])
@given(pairs=st.lists(st.tuples(_A_NAME, _A_NAME | st.just("same")), max_size=12))
def test_names_of_a_whole_table_are_those_of_one_by_one(pairs: list[tuple[str, str]]) -> None:
    # pprof_names finds the few names to simplify in one search over all of them; each is
    # named as pprof_name names it, and those whose shown name differs are the ones listed.
    systems = [system for system, _ in pairs]
    names = [system if name == "same" else name for system, name in pairs]
    shown, changed = pprof_names(names, systems)
    expected = [pprof_name(n, s) for n, s in zip(names, systems, strict=True)]
    assert shown == expected
    assert changed == [i for i, (n, s) in enumerate(zip(names, expected, strict=True)) if n != s]


@pytest.mark.parametrize("field", ["name", "system_name"])
@pytest.mark.parametrize("index", [10_000, -1])
def test_a_function_named_beyond_the_string_table_is_refused_naming_it(
    field: str, index: int
) -> None:
    builder = ProfileBuilder()
    builder.sample([["main.leak"], ["main.main"]], 1, 64, 1, 64)
    builder.serialize()  # fills the string table
    message = builder._message
    setattr(message.function[-1], field, index)
    with pytest.raises(InvalidProfile, match=f"function refers to string {index}, beyond"):
        parse_profile(message.SerializeToString())
