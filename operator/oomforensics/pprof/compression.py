"""Bounded gunzip: profiles arrive gzipped, and a hostile endpoint can serve a gzip bomb."""

import zlib

from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge

GZIP_MAGIC = b"\x1f\x8b"
# Large enough for any real heap profile (100k samples is ~10 MB raw), small enough to bound memory.
DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024
_CHUNK = 1024 * 1024


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def gunzip_bounded(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Decompress every gzip member of `data` (as Go's gzip.Reader does), never past `max_bytes`.

    Raises ProfileTooLarge as soon as the output would exceed the cap, and InvalidProfile for
    corrupt or truncated input.
    """
    out = bytearray()
    rest = data
    while rest:
        if not is_gzip(rest):
            if out:
                break  # trailing garbage after a complete member: Go ignores padding zeros
            raise InvalidProfile("not gzip data (missing gzip magic bytes)")
        decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while not decomp.eof:
                room = max_bytes - len(out)
                chunk = decomp.decompress(pending, min(_CHUNK, room + 1))
                out += chunk
                if len(out) > max_bytes:
                    raise ProfileTooLarge(
                        f"decompressed profile exceeds the {max_bytes} byte limit"
                    )
                pending = decomp.unconsumed_tail
                if not chunk and not pending:
                    break  # input exhausted without reaching the end of the stream
        except zlib.error as exc:
            raise InvalidProfile(f"corrupt gzip data: {exc}") from None
        if not decomp.eof:
            raise InvalidProfile("truncated gzip data (the stream ends before the gzip trailer)")
        rest = decomp.unused_data
    return bytes(out)
