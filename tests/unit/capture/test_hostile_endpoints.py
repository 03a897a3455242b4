"""Hostile and broken endpoints: each ends quickly, in bounded memory, with the error a
user can act on. The server is real (asyncio streams on a local port), so are the sockets."""

import asyncio
import gzip
import pickle
import time
import tracemalloc
import zlib

import pytest

from oomforensics.capture import (
    CaptureError,
    CaptureSettings,
    CaptureTimeout,
    EndpointUnreachable,
    InvalidResponse,
    NotPprofEndpoint,
    PprofClient,
    ResponseTooLarge,
)
from tests.support.hostile_http import (
    flood,
    hang,
    raw,
    refusing_port,
    reply,
    trickle,
    truncated,
)
from tests.unit.capture.conftest import FAST, GOROUTINE, HEAP, HEAP_TEXT

HTML = b"<!DOCTYPE html>\n<html><head><title>Dashboard</title></head><body>hi</body></html>"

# A hostile endpoint that is not cut off would hang the test: fail it instead.
pytestmark = pytest.mark.timeout(30)


async def heap_error(server, settings: CaptureSettings = FAST) -> CaptureError:
    """Capture only the heap profile and return why it is missing."""
    settings = CaptureSettings(
        profiles=("heap",),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_body_bytes=settings.max_body_bytes,
        max_decompressed_bytes=settings.max_decompressed_bytes,
    )
    async with PprofClient(settings) as client:
        result = await client.capture(server.pprof_url)
    assert result.files == {}, "expected the heap profile to be refused"
    return result.errors["heap.pb.gz"]


# --- something else answers ---------------------------------------------------------------


async def test_an_html_page_with_status_200_is_not_a_pprof_endpoint(server):
    server.route(HEAP, reply(HTML, content_type="text/html; charset=utf-8"))
    error = await heap_error(server)
    assert isinstance(error, NotPprofEndpoint)
    message = str(error)
    assert "HTML page" in message and "HTTP 200" in message and "text/html" in message
    assert "<!DOCTYPE html>" in message  # the first bytes, to recognise what answered
    assert "/debug/pprof" in message  # and the hint where pprof usually is


async def test_404_says_pprof_is_not_registered(server):
    error = await heap_error(server)  # no routes: Go's own 404
    assert isinstance(error, NotPprofEndpoint)
    assert "HTTP 404" in str(error) and "404 page not found" in str(error)
    assert "net/http/pprof" in str(error)


async def test_403_points_at_credentials(server):
    server.route(HEAP, reply(b"forbidden", status=403))
    error = await heap_error(server)
    assert isinstance(error, NotPprofEndpoint)
    assert "HTTP 403" in str(error) and "credentials" in str(error)


async def test_500_is_reported_with_what_the_server_said(server):
    server.route(HEAP, reply(b"Could not enable CPU profiling: busy\n", status=500))
    error = await heap_error(server)
    assert isinstance(error, NotPprofEndpoint)
    assert "HTTP 500" in str(error) and "Could not enable CPU profiling" in str(error)


async def test_a_huge_error_page_is_not_read_whole(server):
    server.route(HEAP, reply(b"x" * 8 * 2**20, status=500))
    error = await heap_error(server)
    assert isinstance(error, NotPprofEndpoint)
    assert len(str(error)) < 1000
    assert server.exchange(HEAP).sent < 8 * 2**20


async def test_a_redirect_is_not_followed_but_named(server):
    server.route(HEAP, reply(b"", status=301, headers={"Location": "https://login.example/"}))
    error = await heap_error(server)
    assert isinstance(error, NotPprofEndpoint)
    assert "redirected to https://login.example/" in str(error)


async def test_a_binary_body_that_is_not_a_profile(server):
    server.route(HEAP, reply(b"\x00\x01\x02garbage" * 10, content_type="application/octet-stream"))
    error = await heap_error(server)
    assert isinstance(error, NotPprofEndpoint)
    assert "binary body starting 00 01 02" in str(error)


async def test_an_uncompressed_profile_is_accepted_as_served(server, heap_pb_gz):
    raw_profile = gzip.decompress(heap_pb_gz)
    server.route(HEAP, reply(raw_profile, content_type="application/octet-stream"))
    async with PprofClient(CaptureSettings(profiles=("heap",), read_timeout=5)) as client:
        result = await client.capture(server.pprof_url)
    assert result.files == {"heap.pb.gz": raw_profile}


async def test_a_text_form_that_is_html_is_not_a_pprof_endpoint(server):
    # An HTML page in place of heap.txt says "wrong URL or port", not "damaged profile".
    server.route(HEAP_TEXT, reply(HTML, content_type="text/html"))
    async with PprofClient(CaptureSettings(profiles=("heapText",), read_timeout=5)) as client:
        result = await client.capture(server.pprof_url)
    error = result.errors["heap.txt"]
    assert isinstance(error, NotPprofEndpoint) and "HTML page" in str(error)


async def test_a_text_form_with_the_wrong_header_is_invalid(server):
    server.route(HEAP_TEXT, reply(b"goroutine profile: total 3\n"))
    async with PprofClient(CaptureSettings(profiles=("heapText",), read_timeout=5)) as client:
        result = await client.capture(server.pprof_url)
    error = result.errors["heap.txt"]
    assert isinstance(error, InvalidResponse)
    assert "expected 'heap profile: ...'" in str(error)


async def test_a_text_form_that_is_gzip_hints_at_a_dropped_query(server, heap_pb_gz):
    server.route(GOROUTINE, reply(heap_pb_gz, content_type="application/octet-stream"))
    async with PprofClient(CaptureSettings(profiles=("goroutine",), read_timeout=5)) as client:
        result = await client.capture(server.pprof_url)
    error = result.errors["goroutine.txt"]
    assert isinstance(error, InvalidResponse) and "debug=1 query" in str(error)


# --- damaged profiles ---------------------------------------------------------------------


async def test_a_truncated_gzip_is_an_invalid_response(server, heap_pb_gz):
    server.route(HEAP, reply(heap_pb_gz[: len(heap_pb_gz) // 2]))
    error = await heap_error(server)
    assert isinstance(error, InvalidResponse)
    assert "truncated gzip" in str(error)


async def test_gzip_that_holds_no_profile_is_an_invalid_response(server):
    server.route(HEAP, reply(gzip.compress(b"\xff\xff\xff\xff not protobuf")))
    error = await heap_error(server)
    assert isinstance(error, InvalidResponse)
    assert "not a pprof profile" in str(error)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of zeros in about 256 KiB of gzip."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(packer.compress(b"\0" * 2**20) for _ in range(256)) + packer.flush()


async def test_a_gzip_bomb_is_too_large_not_inflated(server, gzip_bomb):
    assert len(gzip_bomb) < 2**20
    server.route(HEAP, reply(gzip_bomb, content_type="application/octet-stream"))
    error = await heap_error(server, CaptureSettings(read_timeout=5, max_decompressed_bytes=2**23))
    assert isinstance(error, ResponseTooLarge)
    assert "8388608 byte limit" in str(error)


async def test_a_gzip_content_encoding_is_undone_within_the_cap(server, heap_txt, gzip_bomb):
    # Asked for identity, a server may still compress: the file is what the handler wrote.
    server.route(HEAP_TEXT, reply(gzip.compress(heap_txt), headers={"Content-Encoding": "gzip"}))
    server.route(GOROUTINE, reply(gzip_bomb, headers={"Content-Encoding": "gzip"}))
    settings = CaptureSettings(
        profiles=("heapText", "goroutine"), read_timeout=5, max_decompressed_bytes=2**23
    )
    async with PprofClient(settings) as client:
        result = await client.capture(server.pprof_url)
    assert result.files == {"heap.txt": heap_txt}
    assert isinstance(result.errors["goroutine.txt"], ResponseTooLarge)


# --- too large ----------------------------------------------------------------------------

CAP = 2**20


async def test_a_declared_oversized_body_is_refused_before_reading(server):
    server.route(HEAP, flood(2**30, declare_length=True))
    error = await heap_error(server, CaptureSettings(read_timeout=5, max_body_bytes=CAP))
    assert isinstance(error, ResponseTooLarge)
    assert f"declares {2**30} bytes" in str(error)
    assert server.exchange(HEAP).sent < 2**30


async def test_an_endless_body_stops_at_the_cap_in_bounded_memory(server):
    body = 2**30  # a GiB, 1024 times the cap
    server.route(HEAP, flood(body, declare_length=False))
    settings = CaptureSettings(profiles=("heap",), read_timeout=10, max_body_bytes=CAP)
    async with PprofClient(settings) as client:
        tracemalloc.start()
        try:
            result = await client.capture(server.pprof_url)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    error = result.errors["heap.pb.gz"]
    assert isinstance(error, ResponseTooLarge)
    assert f"exceeds the {CAP} byte limit" in str(error)
    # The client held about the cap, not the body (the rest is modules a first request in a
    # fresh process imports: about 2 MiB).
    assert peak < 8 * CAP, peak
    # And hung up: the server got the bytes the client read, plus what socket buffers held
    # (loopback receive buffers autotune up to tcp_rmem's maximum, 32 MiB here).
    exchange = server.exchange(HEAP)
    await asyncio.wait_for(exchange.ended.wait(), 10)  # the server notices the hang-up
    assert exchange.client_gone
    assert exchange.sent < CAP + 48 * 2**20 < body, exchange.sent


# --- slow and dead ------------------------------------------------------------------------


async def test_a_slowloris_byte_per_second_ends_with_a_timeout(server):
    server.route(HEAP, trickle(interval=1.0))
    started = time.monotonic()
    error = await heap_error(server)
    assert isinstance(error, CaptureTimeout)
    assert time.monotonic() - started < 3 * FAST.read_timeout


async def test_a_fast_trickle_still_ends_at_the_overall_deadline(server):
    # A byte every 10 ms never trips a per-read timeout; only the whole-body deadline ends it.
    server.route(HEAP, trickle(interval=0.01))
    started = time.monotonic()
    error = await heap_error(server)
    elapsed = time.monotonic() - started
    assert isinstance(error, CaptureTimeout)
    assert "the body was still arriving after" in str(error)
    assert "0.5 s limit (read_timeout)" in str(error)
    assert server.exchange(HEAP).sent > 5  # it did trickle
    assert elapsed < 3 * FAST.read_timeout


async def test_no_response_headers_ends_with_a_timeout(server):
    server.route(HEAP, hang())
    error = await heap_error(server)
    assert isinstance(error, CaptureTimeout)
    assert "no response headers arrived" in str(error)


async def test_connection_refused_is_unreachable(client):
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}/debug/pprof/heap"
        with pytest.raises(EndpointUnreachable, match="cannot connect") as caught:
            await client.fetch(url, "heap.pb.gz")
    assert caught.value.url == url and caught.value.profile == "heap.pb.gz"
    assert str(caught.value).startswith(f"cannot capture heap.pb.gz from {url}: ")


async def test_a_connection_dropped_mid_body_is_unreachable(server, heap_pb_gz):
    # What a capture sees when the OOM killer ends the process mid-response.
    server.route(HEAP, truncated(heap_pb_gz[:100], declared=len(heap_pb_gz)))
    error = await heap_error(server)
    assert isinstance(error, EndpointUnreachable)
    assert "after 100 body bytes" in str(error)


async def test_a_port_that_does_not_speak_http_is_unreachable(server):
    server.route(HEAP, raw(b"SSH-2.0-OpenSSH_9.6\r\n"))
    error = await heap_error(server)
    assert isinstance(error, EndpointUnreachable)
    assert "before a response" in str(error)


async def test_an_unsupported_scheme_is_an_outcome(client):
    result = await client.capture("ftp://127.0.0.1/debug/pprof")
    assert all(isinstance(e, EndpointUnreachable) for e in result.errors.values())


def test_capture_errors_survive_pickling():
    error = CaptureTimeout("slow", url="http://x/debug/pprof/heap", profile="heap.pb.gz")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CaptureTimeout and str(copy) == str(error)
    assert (copy.url, copy.profile, copy.detail) == (error.url, error.profile, "slow")
