"""Check that a served body is the profile that was asked for, and say what it is if not.

Synchronous and CPU-bound (decompression, protobuf parsing): the client runs it in a thread.
The typed pprof errors become capture errors here, with what came back in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oomforensics.capture.errors import (
    CaptureError,
    InvalidResponse,
    NotFound,
    NotPprofEndpoint,
    ResponseTooLarge,
)
from oomforensics.pprof.compression import gunzip_bounded, is_gzip
from oomforensics.pprof.errors import InvalidProfile, ProfileError, ProfileTooLarge
from oomforensics.pprof.goroutines import check_goroutine_text
from oomforensics.pprof.heaptext import check_heap_text
from oomforensics.pprof.profile import parse_profile

_SNIPPET = 64
_HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")
# The text parsers accept whatever follows a valid header: checking it is checking the body.
_TEXT_CHECKS: dict[str, Callable[[bytes, int], None]] = {
    "heapText": check_heap_text,
    "goroutine": check_goroutine_text,
    "goroutineLeak": check_goroutine_text,
}
_WHAT = {
    "heap": "a gzipped heap profile",
    "allocs": "a gzipped allocs profile",
    "heapText": "a heap profile in debug=1 text form",
    "goroutine": "a goroutine profile in debug=1 text form",
    "goroutineLeak": "a goroutine leak profile in debug=1 text form",
}
_ROOT_HINT = "is the URL the pprof root (usually /debug/pprof) on the port that serves it?"


@dataclass(frozen=True, slots=True)
class Served:
    """One HTTP response as it came back: status, content type and the whole (capped) body."""

    url: str
    file: str
    status: int
    content_type: str
    body: bytes
    content_encoding: str = ""
    location: str = ""


def describe(status: int, content_type: str, body: bytes) -> str:
    """What came back, in a few words: `HTTP 404, text/plain, body '404 page not found'`."""
    kind = content_type or "no content type"
    if not body:
        return f"HTTP {status}, {kind}, empty body"
    head = body[:_SNIPPET]
    if is_gzip(body) or b"\x00" in head:
        shown = f"binary body starting {head[:16].hex(' ')}"
    else:
        text = head.decode("utf-8", "replace")
        more = "..." if len(body) > _SNIPPET else ""
        shown = f"body {text!r}{more}"
    return f"HTTP {status}, {kind}, {shown}"


def status_error(served: Served) -> CaptureError:
    """The error for a response whose status is not 200 (only the body's head was read)."""
    what = describe(served.status, served.content_type, served.body)
    status = served.status
    if status in (401, 403):
        hint = "access denied: check the credentials (or RBAC for pods/proxy)"
    elif status == 404:
        hint = "not found: is net/http/pprof registered, and " + _ROOT_HINT
    elif 300 <= status < 400:
        hint = f"redirected to {served.location or '(no Location)'}: use the final URL"
    elif status >= 500:
        hint = "the server failed to produce the profile"
    else:
        hint = "expected HTTP 200"
    kind = NotFound if status == 404 else NotPprofEndpoint
    return kind(f"{hint} (got {what})", served.url, served.file)


def decode_content(served: Served, max_bytes: int) -> Served:
    """Undo a gzip Content-Encoding (within the cap); identity is what the client asks for."""
    encoding = served.content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return served
    if encoding not in ("gzip", "x-gzip"):
        raise InvalidResponse(
            f"served with Content-Encoding {encoding!r}, which oomforensics cannot decode "
            "(it asks for identity)",
            served.url,
            served.file,
        )
    try:
        body = gunzip_bounded(served.body, max_bytes)
    except ProfileTooLarge:
        raise ResponseTooLarge(
            f"the gzip content encoding expands past the {max_bytes} byte limit",
            served.url,
            served.file,
        ) from None
    except InvalidProfile as exc:
        raise InvalidResponse(
            f"broken gzip content encoding: {exc}", served.url, served.file
        ) from None
    return Served(served.url, served.file, served.status, served.content_type, body)


def validate(profile: str, served: Served, max_decompressed_bytes: int) -> None:
    """Raise the CaptureError that says why `served` is not the `profile` that was asked for."""
    body = served.body
    what = _WHAT[profile]

    def came_back() -> str:
        return describe(served.status, served.content_type, body)

    if _looks_like_html(served):
        raise NotPprofEndpoint(
            f"expected {what}, got an HTML page ({came_back()}): {_ROOT_HINT}",
            served.url,
            served.file,
        )
    try:
        if profile in _TEXT_CHECKS:
            if is_gzip(body):
                raise InvalidResponse(
                    f"expected {what}, got gzip data ({came_back()}): "
                    "was the debug=1 query dropped on the way?",
                    served.url,
                    served.file,
                )
            _TEXT_CHECKS[profile](body, max_decompressed_bytes)
        elif is_gzip(body):
            parse_profile(body, max_decompressed_bytes)
        else:
            # Go always gzips profiles, but an uncompressed profile.proto is valid pprof too.
            try:
                parse_profile(body, max_decompressed_bytes)
            except InvalidProfile:
                raise NotPprofEndpoint(
                    f"expected {what}, got {came_back()}: {_ROOT_HINT}", served.url, served.file
                ) from None
    except ProfileTooLarge as exc:
        raise ResponseTooLarge(str(exc), served.url, served.file) from None
    except ProfileError as exc:
        raise InvalidResponse(f"{exc} ({came_back()})", served.url, served.file) from None


def _looks_like_html(served: Served) -> bool:
    if is_gzip(served.body):
        return False
    media_type = served.content_type.split(";", 1)[0].strip().lower()
    head = served.body[:256].lstrip().lower()
    return media_type in ("text/html", "application/xhtml+xml") or head.startswith(_HTML_STARTS)
