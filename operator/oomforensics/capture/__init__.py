"""Capture pprof profiles over HTTP (the edge): timeouts, size caps and validation.

Usage::

    async with PprofClient(CaptureSettings(gc=True)) as client:
        result = await client.capture("http://10.0.0.5:6060/debug/pprof")
    result.files["heap.pb.gz"]  # exactly as served; result.errors says what is missing and why
"""

from oomforensics.capture.client import (
    DEFAULT_SETTINGS,
    GOROUTINE_LEAK_FILE,
    PROFILE_FILES,
    CaptureResult,
    CaptureSettings,
    PprofClient,
    profile_url,
)
from oomforensics.capture.errors import (
    CaptureError,
    CaptureTimeout,
    EndpointUnreachable,
    InvalidResponse,
    NotFound,
    NotPprofEndpoint,
    ResponseTooLarge,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "GOROUTINE_LEAK_FILE",
    "PROFILE_FILES",
    "CaptureError",
    "CaptureResult",
    "CaptureSettings",
    "CaptureTimeout",
    "EndpointUnreachable",
    "InvalidResponse",
    "NotFound",
    "NotPprofEndpoint",
    "PprofClient",
    "ResponseTooLarge",
    "profile_url",
]
