"""Decode profile.proto into a compact, function-level model: `parse_profile`.

The model (model.py) keeps what every later step needs (sample types and, per sample, its call
stack of function names and its values) and nothing pprof's `-granularity=functions` view would
discard: frames are named exactly as `go tool pprof` names its nodes, inlined frames are
expanded, and the profile's own drop_frames/keep_frames pruning is applied as pprof applies it
(pruning.py).

Decoding splits the profile's top level with the C kernels (kernels.split_profile, else upb's
`ProfileView`), reads samples and locations as raw bytes and decodes their varints for all
samples at once (vectorised.py: the C kernels, else numpy through wire.py); a profile that uses
an encoding the vectorised decoder does not handle, or that is invalid, is decoded the
ordinary way, one message at a time (careful.py), which gives the same model or the same
error. This module
also re-exports the model's names (and stacks.py's), which callers import from here.
"""

from __future__ import annotations

from oomforensics.pprof import kernels, wire
from oomforensics.pprof.compression import DEFAULT_MAX_DECOMPRESSED, gunzip_bounded, is_gzip
from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge
from oomforensics.pprof.header import describe
from oomforensics.pprof.model import Index, Profile, Samples, SampleType, Stack
from oomforensics.pprof.stacks import StackIndex, index_stacks
from oomforensics.pprof.vectorised import build_vectorised

__all__ = [
    "Index",
    "Profile",
    "SampleType",
    "Samples",
    "Stack",
    "StackIndex",
    "index_stacks",
    "parse_profile",
]


def parse_profile(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> Profile:
    """Parse a profile as served by net/http/pprof: gzipped or raw protobuf.

    Raises InvalidProfile for anything that is not a well-formed profile (HTML error pages,
    truncated gzip, dangling references) and ProfileTooLarge past `max_bytes`.
    """
    if is_gzip(data):
        raw = gunzip_bounded(data, max_bytes)
    elif len(data) > max_bytes:
        raise ProfileTooLarge(f"profile exceeds the {max_bytes} byte limit")
    else:
        raw = data
    if not raw:
        raise InvalidProfile("empty profile")
    parts = kernels.split_profile(raw)
    if parts is not None:
        try:
            return build_vectorised(parts, data)
        except _HANDED_OVER:
            pass  # upb's view, and the decoders below, decide
    return _decoded_with_upb(raw, data)


# Whatever trips the vectorised decoder (a profile is untrusted input) gets the careful one.
_HANDED_OVER = (wire.Unsupported, InvalidProfile, IndexError, ValueError, OverflowError)


def _decoded_with_upb(raw: bytes, data: bytes) -> Profile:
    """Through upb's ProfileView: vectorised, else message by message (careful.py), which
    gives the same profile or the exact error. Imported here: protobuf takes 20 ms to import,
    and the C kernels split most profiles without it."""
    from google.protobuf.message import DecodeError

    from oomforensics.pprof import profile_pb2
    from oomforensics.pprof.careful import build_careful

    view = profile_pb2.ProfileView()
    try:
        view.ParseFromString(raw)
    except DecodeError:
        raise InvalidProfile(f"not a pprof profile ({describe(data)})") from None
    try:
        return build_vectorised(view, data)
    except _HANDED_OVER:
        pass
    return build_careful(view, data)
