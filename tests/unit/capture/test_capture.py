"""capture(): every profile as served, the heap profile first, and one bad endpoint never
costing the others; problems are recorded per file, never raised."""

import time
from datetime import UTC

import httpx
import pytest

from oomforensics.capture import (
    CaptureSettings,
    CaptureTimeout,
    EndpointUnreachable,
    InvalidResponse,
    NotPprofEndpoint,
    PprofClient,
)
from tests.support.hostile_http import after, hang, in_parts, refusing_port, reply
from tests.unit.capture.conftest import (
    ALLOCS,
    FAST,
    GOROUTINE,
    GOROUTINE_LEAK,
    HEAP,
    HEAP_GC,
    HEAP_TEXT,
)

# A hostile endpoint that is not cut off would hang the test: fail it instead.
pytestmark = pytest.mark.timeout(30)


async def test_captures_each_profile_exactly_as_served(
    healthy, client, heap_pb_gz, heap_txt, goroutine_txt
):
    result = await client.capture(healthy.pprof_url + "/")  # a trailing slash is tolerated

    assert result.errors == {}
    assert result.files == {
        "heap.pb.gz": heap_pb_gz,
        "heap.txt": heap_txt,
        "goroutine.txt": goroutine_txt,
    }
    assert result.ok
    assert result.base_url == healthy.pprof_url + "/"
    assert result.started_at.tzinfo is UTC and result.started_at <= result.finished_at
    # The goroutine leak profile is asked for too; this target (like any Go before 1.26, or
    # built without the experiment) answers 404, which is no error: the file is just absent.
    assert sorted(healthy.targets()) == sorted([HEAP, HEAP_TEXT, GOROUTINE, GOROUTINE_LEAK])
    # Asked for the bytes as written: no transport compression to undo (or to bomb us).
    assert {e.headers["accept-encoding"] for e in healthy.exchanges} == {"identity"}


async def test_gc_is_requested_on_the_heap_profile_only_when_asked(healthy):
    async with PprofClient(CaptureSettings(gc=True, read_timeout=5)) as client:
        result = await client.capture(healthy.pprof_url)
    assert result.ok
    assert sorted(healthy.targets()) == sorted([HEAP_GC, HEAP_TEXT, GOROUTINE, GOROUTINE_LEAK])


async def test_allocs_profile_when_asked(healthy, heap_pb_gz):
    settings = CaptureSettings(profiles=("heap", "allocs"), read_timeout=5)
    async with PprofClient(settings) as client:
        result = await client.capture(healthy.pprof_url)
    assert result.files == {"heap.pb.gz": heap_pb_gz, "allocs.pb.gz": heap_pb_gz}
    assert sorted(healthy.targets()) == sorted([HEAP, ALLOCS])


async def test_the_heap_profile_is_fetched_before_the_text_forms(healthy, heap_pb_gz):
    # A slow heap endpoint: if the text forms did not wait for it, they would arrive
    # while its parts are still being written.
    healthy.route(HEAP, in_parts(heap_pb_gz, parts=5, interval=0.02))
    async with PprofClient(CaptureSettings(read_timeout=5)) as client:
        result = await client.capture(healthy.pprof_url)

    assert result.ok and not result.errors
    heap_done = healthy.log.index(f"finished {HEAP}")
    assert healthy.log.index(f"arrived {HEAP}") == 0
    assert healthy.log.index(f"arrived {HEAP_TEXT}") > heap_done
    assert healthy.log.index(f"arrived {GOROUTINE}") > heap_done


async def test_a_hanging_endpoint_does_not_hold_back_the_others(healthy, heap_txt):
    healthy.route(GOROUTINE, hang())
    # heap.txt is only answered while the goroutine request is in flight: it can arrive
    # only if the two are fetched concurrently.
    healthy.route(HEAP_TEXT, after(healthy.arrival(GOROUTINE), reply(heap_txt)))
    settings = CaptureSettings(read_timeout=1.0)
    async with PprofClient(settings) as client:
        started = time.monotonic()
        result = await client.capture(healthy.pprof_url)
        elapsed = time.monotonic() - started

    assert result.ok
    assert set(result.files) == {"heap.pb.gz", "heap.txt"}
    assert set(result.errors) == {"goroutine.txt"}
    assert isinstance(result.errors["goroutine.txt"], CaptureTimeout)
    assert "no response headers arrived" in str(result.errors["goroutine.txt"])
    assert elapsed < 2.5 * settings.read_timeout  # one timeout, not one per endpoint


async def test_a_hanging_heap_endpoint_still_leaves_the_text_forms(healthy, client):
    healthy.route(HEAP, hang())
    result = await client.capture(healthy.pprof_url)

    assert not result.ok
    assert isinstance(result.errors["heap.pb.gz"], CaptureTimeout)
    assert set(result.files) == {"heap.txt", "goroutine.txt"}


async def test_each_failure_is_recorded_for_its_own_file(healthy, client):
    healthy.route(HEAP, reply(b"404 page not found\n", status=404))
    healthy.route(HEAP_TEXT, reply(b"<html><body>Sign in</body></html>", content_type="text/html"))
    healthy.route(GOROUTINE, reply(b"goroutine 1 [running]:\nmain.main()\n"))  # debug=2 form

    result = await client.capture(healthy.pprof_url)

    assert result.files == {}
    assert not result.ok
    errors = result.errors
    assert isinstance(errors["heap.pb.gz"], NotPprofEndpoint)
    assert isinstance(errors["heap.txt"], NotPprofEndpoint)
    assert isinstance(errors["goroutine.txt"], InvalidResponse)
    assert "debug=2" in str(errors["goroutine.txt"])
    for file, error in errors.items():
        assert error.profile == file
        assert error.url.startswith(healthy.pprof_url)


async def test_an_unreachable_target_is_an_outcome_not_an_exception(client):
    with refusing_port() as port:
        result = await client.capture(f"http://127.0.0.1:{port}/debug/pprof")
    assert result.files == {}
    assert set(result.errors) == {"heap.pb.gz", "heap.txt", "goroutine.txt"}
    assert all(isinstance(e, EndpointUnreachable) for e in result.errors.values())


async def test_a_given_http_client_is_used_with_its_headers_and_left_open(healthy):
    async with httpx.AsyncClient() as http:
        async with PprofClient(FAST, http=http, headers={"Authorization": "Bearer t0ken"}) as c:
            result = await c.capture(healthy.pprof_url)
        assert not http.is_closed
    assert result.ok and not result.errors
    assert {e.headers["authorization"] for e in healthy.exchanges} == {"Bearer t0ken"}


async def test_a_relative_root_works_with_an_api_server_style_client(healthy, heap_pb_gz):
    # The API server client of pods/proxy carries the base URL; capture gets a path.
    async with (
        httpx.AsyncClient(base_url=healthy.url) as http,
        PprofClient(FAST, http=http) as client,
    ):
        result = await client.capture("/debug/pprof")
    assert result.files["heap.pb.gz"] == heap_pb_gz


async def test_bugs_propagate_instead_of_becoming_outcomes():
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug in a transport")

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as http:
        client = PprofClient(FAST, http=http)
        with pytest.raises(RuntimeError, match="bug in a transport"):
            await client.capture("http://pprof.test/debug/pprof")


async def test_fetch_returns_the_body(healthy, client, heap_txt):
    assert await client.fetch(healthy.url + HEAP_TEXT, "heap.txt") == heap_txt


async def test_the_client_closes_its_own_http_client():
    client = PprofClient(FAST)
    await client.aclose()
    # Closed: a second capture cannot start a new connection pool.
    with pytest.raises(RuntimeError):
        await client.fetch("http://127.0.0.1:9/x", "heap.pb.gz")


LEAK_TEXT = b"""goroutineleak profile: total 2
2 @ 0x48abee 0x41a72e 0x41a252 0x70261e 0x492541
#\t0x70261d\tmain.waitForWarehouse+0x3d\texample.com/storefront/main.go:563

"""


async def test_the_goroutine_leak_profile_is_kept_where_served(healthy, client):
    healthy.route(GOROUTINE_LEAK, reply(LEAK_TEXT))
    result = await client.capture(healthy.pprof_url)
    assert result.errors == {}
    assert result.files["goroutineleak.txt"] == LEAK_TEXT


async def test_a_goroutine_leak_profile_that_fails_otherwise_is_recorded(healthy, client):
    healthy.route(GOROUTINE_LEAK, reply(b"boom", status=500))
    result = await client.capture(healthy.pprof_url)
    assert "goroutineleak.txt" not in result.files and result.ok
    assert isinstance(result.errors["goroutineleak.txt"], NotPprofEndpoint)


async def test_the_goroutine_leak_profile_can_be_left_out(healthy):
    async with PprofClient(CaptureSettings(goroutine_leak=False, read_timeout=5)) as client:
        result = await client.capture(healthy.pprof_url)
    assert result.errors == {} and "goroutineleak.txt" not in result.files
    assert GOROUTINE_LEAK not in healthy.targets()
