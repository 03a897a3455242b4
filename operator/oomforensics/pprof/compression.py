"""Bounded gunzip: profiles arrive gzipped, and a hostile endpoint can serve a gzip bomb."""

from types import ModuleType

from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge


def _inflate() -> ModuleType:
    # ISA-L's inflate (the isal package, zlib's API) takes half of zlib's time on profiles
    # (80 -> 45 ms for 10 MB); zlib where it is not installed.
    try:
        from isal import isal_zlib
    except ImportError:
        import zlib

        return zlib
    return isal_zlib


_zlib = _inflate()

GZIP_MAGIC = b"\x1f\x8b"
# Large enough for any real heap profile (100k samples is ~10 MB raw), small enough to bound memory.
DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def gunzip_bounded(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Decompress every gzip member of `data` (as Go's gzip.Reader does), never past `max_bytes`.

    Raises ProfileTooLarge as soon as the output would exceed the cap, and InvalidProfile for
    corrupt or truncated input.
    """
    # One decompress call per member, bounded by what room is left: zlib grows its output as
    # it goes (the bound is not allocated up front), and no input is copied between calls.
    parts: list[bytes] = []
    size = 0
    rest = data
    while rest:
        if not is_gzip(rest):
            if parts:
                break  # trailing garbage after a complete member: Go ignores padding zeros
            raise InvalidProfile("not gzip data (missing gzip magic bytes)")
        decomp = _zlib.decompressobj(wbits=16 + _zlib.MAX_WBITS)
        try:
            part = decomp.decompress(rest, max_bytes - size + 1)
        except _zlib.error as exc:
            raise InvalidProfile(f"corrupt gzip data: {exc}") from None
        size += len(part)
        if size > max_bytes:
            # Drop the output first: the exception's traceback keeps this frame, and with it
            # a cap's worth of bytes, alive until the cyclic GC runs (a gzip bomb retried
            # every few seconds grew the operator by the cap each time).
            del part, parts
            raise ProfileTooLarge(f"decompressed profile exceeds the {max_bytes} byte limit")
        parts.append(part)
        if not decomp.eof:
            raise InvalidProfile("truncated gzip data (the stream ends before the gzip trailer)")
        rest = decomp.unused_data
    return parts[0] if len(parts) == 1 else b"".join(parts)
