import gzip
import traceback
import zlib

import pytest

from oomforensics.pprof.compression import gunzip_bounded
from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge


def test_round_trips_gzip_data():
    payload = bytes(range(256)) * 1000
    assert gunzip_bounded(gzip.compress(payload)) == payload


def test_reads_every_member_like_go():
    assert gunzip_bounded(gzip.compress(b"abc") + gzip.compress(b"def")) == b"abcdef"


def test_gzip_bomb_stops_at_the_cap_without_inflating_it():
    # 1 GiB of zeros compresses to about 1 MB: decompressing it all would be the attack.
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = b"".join(bomb.compress(b"\0" * 2**20) for _ in range(1024)) + bomb.flush()
    with pytest.raises(ProfileTooLarge, match="exceeds the 8388608 byte limit"):
        gunzip_bounded(data, max_bytes=8 * 2**20)


def test_a_gzip_bomb_leaves_nothing_inflated_in_the_traceback() -> None:
    # The exception's frames live until the cyclic GC runs: a cap's worth of output kept in
    # them grew the operator by the cap at every attempt at a hostile endpoint.
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = b"".join(bomb.compress(b"\0" * 2**20) for _ in range(16)) + bomb.flush()
    with pytest.raises(ProfileTooLarge) as raised:
        gunzip_bounded(data, max_bytes=2**20)

    def inflated(value: object) -> int:
        if isinstance(value, bytes | bytearray):
            return len(value)
        return sum(map(inflated, value)) if isinstance(value, list) else 0

    kept = [
        (frame.f_code.co_name, name, inflated(value))
        for frame, _ in traceback.walk_tb(raised.value.__traceback__)
        for name, value in frame.f_locals.items()
        if inflated(value) > len(data)
    ]
    assert not kept, kept


def test_exactly_at_the_cap_is_allowed():
    assert len(gunzip_bounded(gzip.compress(b"x" * 4096), max_bytes=4096)) == 4096


def test_truncated_gzip_is_an_invalid_profile():
    data = gzip.compress(bytes(range(256)) * 400)
    with pytest.raises(InvalidProfile, match="truncated"):
        gunzip_bounded(data[: len(data) // 2])


def test_corrupt_gzip_is_an_invalid_profile():
    data = bytearray(gzip.compress(b"hello world" * 100))
    data[12:20] = b"\xff" * 8
    with pytest.raises(InvalidProfile, match="corrupt gzip"):
        gunzip_bounded(bytes(data))


def test_plain_text_is_not_gzip():
    with pytest.raises(InvalidProfile, match="not gzip"):
        gunzip_bounded(b"<html>404</html>")
