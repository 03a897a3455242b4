"""Which URLs a capture asks for, and settings that cannot work refused up front."""

from datetime import UTC, datetime

import pytest

from oomforensics.capture import CaptureResult, CaptureSettings, NotPprofEndpoint, profile_url

ROOT = "http://10.0.0.5:6060/debug/pprof"


@pytest.mark.parametrize(
    ("profile", "gc", "url"),
    [
        ("heap", False, ROOT + "/heap"),
        ("heap", True, ROOT + "/heap?gc=1"),
        ("heapText", True, ROOT + "/heap?debug=1"),
        ("goroutine", True, ROOT + "/goroutine?debug=1"),
        ("allocs", True, ROOT + "/allocs"),
    ],
)
def test_profile_urls(profile, gc, url):
    assert profile_url(ROOT, profile, CaptureSettings(gc=gc)) == url
    assert profile_url(ROOT + "/", profile, CaptureSettings(gc=gc)) == url


def test_defaults_capture_the_three_forms_without_forcing_gc():
    settings = CaptureSettings()
    assert settings.profiles == ("heap", "heapText", "goroutine") and not settings.gc


@pytest.mark.parametrize(
    "bad",
    [
        {"profiles": ("heap", "cpu")},
        {"profiles": ("heap", "heap")},
        {"read_timeout": 0},
        {"connect_timeout": -1},
        {"max_body_bytes": 0},
    ],
)
def test_settings_that_cannot_work_are_refused(bad):
    with pytest.raises(ValueError):
        CaptureSettings(**bad)


def test_ok_means_the_heap_profile_arrived():
    now = datetime.now(UTC)
    missing = NotPprofEndpoint("HTTP 404", url=ROOT + "/heap", profile="heap.pb.gz")
    without = CaptureResult(ROOT, {"heap.txt": b"x"}, {"heap.pb.gz": missing}, now, now)
    with_heap = CaptureResult(ROOT, {"heap.pb.gz": b"x"}, {}, now, now)
    assert not without.ok and with_heap.ok
