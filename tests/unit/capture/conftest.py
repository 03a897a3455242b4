"""A hostile HTTP server and real profile bodies for the capture client's tests."""

from pathlib import Path

import pytest

from oomforensics.capture import CaptureSettings, PprofClient
from tests.support.hostile_http import HostileServer, reply
from tests.support.profiles import ProfileBuilder

TEXT = Path(__file__).resolve().parents[2] / "fixtures" / "text"
HEAP = "/debug/pprof/heap"
HEAP_GC = "/debug/pprof/heap?gc=1"
HEAP_TEXT = "/debug/pprof/heap?debug=1"
GOROUTINE = "/debug/pprof/goroutine?debug=1"
GOROUTINE_LEAK = "/debug/pprof/goroutineleak?debug=1"  # Go 1.26+, with the GOEXPERIMENT
ALLOCS = "/debug/pprof/allocs"
# Small deadlines: every hostile case must end in a fraction of a second.
FAST = CaptureSettings(connect_timeout=1.0, read_timeout=0.5)


@pytest.fixture(scope="session")
def heap_pb_gz() -> bytes:
    return (
        ProfileBuilder()
        .sample([["bytes.growSlice"], ["main.cacheResponse"], ["main.main"]], 10, 640, 5, 320)
        .serialize()
    )


@pytest.fixture(scope="session")
def heap_txt() -> bytes:
    return (TEXT / "heap-go1.19.txt").read_bytes()


@pytest.fixture(scope="session")
def goroutine_txt() -> bytes:
    return (TEXT / "goroutine-go1.19.txt").read_bytes()


@pytest.fixture
async def server():
    async with HostileServer() as hostile:
        yield hostile


@pytest.fixture
def healthy(server, heap_pb_gz, heap_txt, goroutine_txt) -> HostileServer:
    """The server answering like net/http/pprof; tests then break single routes."""
    profile = reply(heap_pb_gz, content_type="application/octet-stream")
    server.route(HEAP, profile)
    server.route(HEAP_GC, profile)
    server.route(ALLOCS, profile)
    server.route(HEAP_TEXT, reply(heap_txt))
    server.route(GOROUTINE, reply(goroutine_txt))
    return server


@pytest.fixture
async def client():
    async with PprofClient(FAST) as pprof:
        yield pprof
