"""Capturing from the real leaking Go service: the three forms arrive and parse, and gc=True
really makes the service collect before the heap profile is written."""

import pytest

from oomforensics.capture import CaptureSettings, PprofClient
from oomforensics.pprof.goroutines import parse_goroutine_text
from oomforensics.pprof.heaptext import parse_heap_text
from oomforensics.pprof.profile import parse_profile
from tests.support.leaky import LeakyService
from tests.support.snapshots import wait_for_progress

pytestmark = pytest.mark.gotool


@pytest.fixture(scope="module")
def leaky():
    with LeakyService("mapcache", "-rate", "50") as svc:
        # The heap profile shows the heap as of a completed GC: wait for two, so the leak shows.
        wait_for_progress(svc, steps=5, gcs=2)
        yield svc


def forced_gcs(heap_txt: bytes) -> int:
    value = parse_heap_text(heap_txt).memstats.integer("NumForcedGC")
    assert value is not None, "heap.txt has no NumForcedGC"
    return value


async def test_captures_the_three_forms_of_a_leaking_service(leaky):
    async with PprofClient() as client:
        result = await client.capture(leaky.pprof_url)

    assert result.ok, result.errors
    assert result.errors == {}
    assert set(result.files) == {"heap.pb.gz", "heap.txt", "goroutine.txt"}
    assert result.files["heap.pb.gz"][:2] == b"\x1f\x8b"  # as served: gzipped, not re-encoded
    profile = parse_profile(result.files["heap.pb.gz"])
    assert [st.type for st in profile.sample_types] == [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    ]
    assert any("main.cacheResponse" in stack for stack in profile.stacks)
    memstats = parse_heap_text(result.files["heap.txt"]).memstats
    for field in ("HeapSys", "HeapInuse", "HeapIdle", "HeapReleased", "StackSys", "GCSys"):
        assert memstats.integer(field), f"MemStats block lacks {field}"
    assert parse_goroutine_text(result.files["goroutine.txt"]).total > 0


async def test_gc_true_forces_one_collection_before_the_heap_profile(leaky):
    # The service never calls runtime.GC itself, so NumForcedGC counts our ?gc=1 requests
    # exactly; heap.txt is fetched after the heap profile, so it already shows the one forced.
    async with PprofClient(CaptureSettings(gc=False)) as client:
        before = forced_gcs((await client.capture(leaky.pprof_url)).files["heap.txt"])
    async with PprofClient(CaptureSettings(gc=True)) as client:
        result = await client.capture(leaky.pprof_url)
    assert result.ok, result.errors
    assert forced_gcs(result.files["heap.txt"]) == before + 1
    async with PprofClient(CaptureSettings(gc=False)) as client:
        after = forced_gcs((await client.capture(leaky.pprof_url)).files["heap.txt"])
    assert after == before + 1  # and without gc, no collection is forced


async def test_a_service_that_stopped_is_unreachable_not_an_exception():
    with LeakyService("steady") as svc:
        url = svc.pprof_url
    async with PprofClient(CaptureSettings(connect_timeout=2, read_timeout=5)) as client:
        result = await client.capture(url)
    assert not result.ok
    assert {type(e).__name__ for e in result.errors.values()} == {"EndpointUnreachable"}
