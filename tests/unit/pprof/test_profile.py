import gzip

import pytest

from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge, UnknownSampleIndex
from oomforensics.pprof.profile import SampleType, parse_profile
from tests.support.profiles import ProfileBuilder

LEAF = ["bytes.growSlice"]


def test_decodes_sample_types_and_stacks_leaf_first():
    data = (
        ProfileBuilder()
        .sample([LEAF, ["bytes.(*Buffer).grow"], ["main.appendAudit"]], 1, 64, 1, 64)
        .serialize()
    )
    profile = parse_profile(data)
    assert profile.sample_types[-1] == SampleType("inuse_space", "bytes")
    assert profile.stacks == {
        ("bytes.growSlice", "bytes.(*Buffer).grow", "main.appendAudit"): (1, 64, 1, 64)
    }


def test_expands_inlined_frames_innermost_first():
    data = ProfileBuilder().sample([["sync.NewCond", "main.newPool"], ["main.main"]], 1, 2, 3, 4)
    profile = parse_profile(data.serialize())
    assert list(profile.stacks) == [("sync.NewCond", "main.newPool", "main.main")]


def test_same_function_stack_from_different_addresses_is_summed():
    builder = ProfileBuilder()
    builder.sample([["main.a"], ["main.main"]], 1, 1, 1, 10)
    # A second location of the same function (different line, so different location).
    builder.sample([["main.a", ""], ["main.main"]], 1, 1, 1, 5)
    profile = parse_profile(builder.serialize())
    assert profile.stacks[("main.a", "main.main")] == (2, 2, 2, 15)


def test_unsymbolized_frames_are_named_after_the_binary():
    profile = parse_profile(ProfileBuilder().sample([[""], ["main.main"]], 0, 0, 1, 8).serialize())
    assert list(profile.stacks) == [("[server]", "main.main")]


def test_raw_protobuf_is_accepted_as_well_as_gzip():
    data = ProfileBuilder().sample([LEAF], 1, 2, 3, 4).serialize(compress=False)
    assert parse_profile(data).total(3) == 4


def test_sample_index_by_name_number_and_default():
    profile = parse_profile(ProfileBuilder().sample([LEAF], 1, 2, 3, 4).serialize())
    assert profile.sample_index("inuse_objects") == 2
    assert profile.sample_index("1") == 1
    assert profile.sample_index(None) == 3  # default_sample_type
    with pytest.raises(UnknownSampleIndex, match="inuse_space"):
        profile.sample_index("cpu")


def test_html_error_page_is_named_as_such():
    with pytest.raises(InvalidProfile, match="HTML page"):
        parse_profile(b"<!DOCTYPE html><html><body>404 page not found</body></html>")


def test_gzipped_text_is_not_a_profile():
    with pytest.raises(InvalidProfile, match="not a pprof profile"):
        parse_profile(gzip.compress(b"heap profile: 1: 2 [3: 4] @ heap/1024\n"))


def test_empty_body_is_not_a_profile():
    with pytest.raises(InvalidProfile, match="empty"):
        parse_profile(b"")


def test_dangling_location_reference_is_rejected():
    builder = ProfileBuilder().sample([LEAF], 1, 2, 3, 4)
    builder._message.sample[0].location_id.append(999)
    with pytest.raises(InvalidProfile, match="missing location 999"):
        parse_profile(builder.serialize())


def test_value_count_must_match_sample_types():
    builder = ProfileBuilder().sample([LEAF], 1, 2, 3)
    with pytest.raises(InvalidProfile, match="3 values for 4 sample types"):
        parse_profile(builder.serialize())


def test_oversized_raw_profile_is_rejected_before_parsing():
    data = ProfileBuilder().sample([LEAF], 1, 2, 3, 4).serialize(compress=False)
    with pytest.raises(ProfileTooLarge):
        parse_profile(data, max_bytes=len(data) - 1)


def test_drop_frames_prunes_like_pprof():
    # pprof drops the matched frame and everything beneath it, once a user frame is above.
    builder = ProfileBuilder(drop_frames="runtime\\..*")
    builder.sample(
        [["runtime.mallocgc"], ["runtime.makeslice"], ["main.a"], ["main.main"]], 1, 1, 1, 100
    )
    profile = parse_profile(builder.serialize())
    assert list(profile.stacks) == [("main.a", "main.main")]
