"""Fetch pprof profiles from a Go service: bounded in time and size, validated, never raising.

A service about to be OOM-killed is the one whose profiles matter most, and also the one most
likely to answer slowly, partially or not at all. So the heap profile is fetched first and on
its own; the other forms follow concurrently, each with its own deadline; and whatever goes
wrong with an endpoint is recorded in the result instead of raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx

from oomforensics import __version__
from oomforensics.capture.errors import (
    CaptureError,
    CaptureTimeout,
    EndpointUnreachable,
    NotFound,
    ResponseTooLarge,
)
from oomforensics.capture.validation import Served, decode_content, status_error, validate

PROFILE_FILES: Mapping[str, str] = {
    "heap": "heap.pb.gz",
    "heapText": "heap.txt",
    "goroutine": "goroutine.txt",
    "allocs": "allocs.pb.gz",
}
# Go 1.26's goroutine leak profile (goroutines the GC proved leaked): fetched beside the
# goroutine profile when `goroutine_leak` is on. Only binaries built with
# GOEXPERIMENT=goroutineleakprofile serve it (runtime/pprof registers it under that
# experiment, net/http/pprof serves what is registered); every other target answers 404,
# which means "not served", not a failure. Serving it runs one leak-detecting GC cycle.
GOROUTINE_LEAK = "goroutineLeak"
GOROUTINE_LEAK_FILE = "goroutineleak.txt"
# The part of an error response worth reading for the message.
_ERROR_HEAD = 512


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    profiles: tuple[str, ...] = ("heap", "heapText", "goroutine")  # allocs is optional
    gc: bool = False  # run a GC before the heap profile (heap?gc=1): fresher, but a pause
    # With the goroutine profile, also fetch /goroutineleak?debug=1 where served (see above).
    goroutine_leak: bool = True
    # Connecting (and waiting for a pooled connection) may take this long.
    connect_timeout: float = 5.0
    # Once connected: the whole exchange, request to last byte, wall time. A slowloris that
    # trickles a byte at a time ends here, whatever the gap between bytes.
    read_timeout: float = 30.0
    max_body_bytes: int = 64 * 2**20  # as received; reading stops at the cap
    max_decompressed_bytes: int = 256 * 2**20  # a profile once gunzipped (gzip bombs)

    def __post_init__(self) -> None:
        unknown = [p for p in self.profiles if p not in PROFILE_FILES]
        if unknown:
            raise ValueError(f"unknown profiles {unknown}: choose from {', '.join(PROFILE_FILES)}")
        if len(set(self.profiles)) != len(self.profiles):
            raise ValueError(f"profiles listed twice: {list(self.profiles)}")
        if min(self.connect_timeout, self.read_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if min(self.max_body_bytes, self.max_decompressed_bytes) <= 0:
            raise ValueError("size caps must be positive")


DEFAULT_SETTINGS = CaptureSettings()


@dataclass(frozen=True, slots=True)
class CaptureResult:
    base_url: str
    files: Mapping[str, bytes]  # file name (heap.pb.gz, heap.txt, ...) -> body as served
    errors: Mapping[str, CaptureError]  # file name -> why it is missing
    started_at: datetime  # UTC
    finished_at: datetime  # UTC

    @property
    def ok(self) -> bool:
        """The heap profile arrived: the one that matters."""
        return PROFILE_FILES["heap"] in self.files


def profile_url(base_url: str, profile: str, settings: CaptureSettings = DEFAULT_SETTINGS) -> str:
    """The URL of `profile` under the pprof root `base_url` (a trailing slash is tolerated)."""
    root = base_url.rstrip("/")
    if profile == "heap":
        return f"{root}/heap?gc=1" if settings.gc else f"{root}/heap"
    if profile == "heapText":
        return f"{root}/heap?debug=1"
    if profile == "goroutine":
        return f"{root}/goroutine?debug=1"
    if profile == "allocs":
        return f"{root}/allocs"
    if profile == GOROUTINE_LEAK:
        return f"{root}/goroutineleak?debug=1"
    raise ValueError(f"unknown profile {profile!r}: choose from {', '.join(PROFILE_FILES)}")


class PprofClient:
    """Captures pprof profiles over HTTP; `async with PprofClient() as client: ...`."""

    def __init__(
        self,
        settings: CaptureSettings = DEFAULT_SETTINGS,
        *,
        http: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        # A given client (e.g. the API server's, for pods/proxy) is used as is and left open.
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(follow_redirects=False)
        self._headers = {
            # Profiles are gzipped already, and a transport encoding would be a second,
            # unbounded decompression: ask for the bytes as the handler wrote them.
            "Accept-Encoding": "identity",
            "User-Agent": f"oomforensics/{__version__}",
            **(headers or {}),
        }

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def capture(self, base_url: str) -> CaptureResult:
        """Fetch and validate the configured profiles from the pprof root `base_url`.

        Endpoint problems end up in `errors`, keyed by file name; only bugs raise (the bug
        itself, or an ExceptionGroup when several concurrent fetches hit bugs).
        """
        started_at = datetime.now(UTC)
        outcomes: dict[str, bytes | CaptureError] = {}
        wanted = self.settings.profiles
        heap: Served | None = None
        if "heap" in wanted:
            # First and alone: if the process is about to die, this is the profile to have.
            try:
                heap = await self._get(profile_url(base_url, "heap", self.settings), "heap")
            except CaptureError as exc:
                outcomes["heap"] = exc
        try:
            async with asyncio.TaskGroup() as tasks:
                if heap is not None:
                    tasks.create_task(self._check("heap", heap, outcomes))
                for profile in wanted:
                    if profile != "heap":
                        tasks.create_task(self._capture_one(base_url, profile, outcomes))
                if "goroutine" in wanted and self.settings.goroutine_leak:
                    tasks.create_task(self._capture_one(base_url, GOROUTINE_LEAK, outcomes))
        except ExceptionGroup as group:
            # Only bugs get here (endpoint problems are outcomes); raise the bug itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        files: dict[str, bytes] = {}
        errors: dict[str, CaptureError] = {}
        for profile in wanted:
            outcome = outcomes[profile]
            if isinstance(outcome, CaptureError):
                errors[PROFILE_FILES[profile]] = outcome
            else:
                files[PROFILE_FILES[profile]] = outcome
        leaks = outcomes.get(GOROUTINE_LEAK)
        if isinstance(leaks, bytes):
            files[GOROUTINE_LEAK_FILE] = leaks
        elif leaks is not None and not _not_served(leaks) and PROFILE_FILES["goroutine"] in files:
            # Only worth saying when the goroutine profile itself came: otherwise its own error
            # already tells what is wrong with the target.
            errors[GOROUTINE_LEAK_FILE] = leaks
        return CaptureResult(base_url, files, errors, started_at, datetime.now(UTC))

    async def fetch(self, url: str, profile: str) -> bytes:
        """GET `url` and return its body, within the size cap and the deadline.

        `profile` names what is being fetched (e.g. heap.pb.gz) in the errors. Raises
        CaptureError subclasses; a status other than 200 is NotPprofEndpoint.
        """
        return (await self._get(url, profile)).body

    async def _capture_one(
        self, base_url: str, profile: str, outcomes: dict[str, bytes | CaptureError]
    ) -> None:
        try:
            served = await self._get(profile_url(base_url, profile, self.settings), profile)
        except CaptureError as exc:
            outcomes[profile] = exc
            return
        await self._check(profile, served, outcomes)

    async def _check(
        self, profile: str, served: Served, outcomes: dict[str, bytes | CaptureError]
    ) -> None:
        try:
            await asyncio.to_thread(validate, profile, served, self.settings.max_decompressed_bytes)
        except CaptureError as exc:
            outcomes[profile] = exc
            return
        outcomes[profile] = served.body

    async def _get(self, url: str, profile: str) -> Served:
        """The response to GET `url`: status 200 and the whole body, or a CaptureError.

        `profile` is a profile name (heap) or a file name; errors carry the file name.
        """
        file = (
            GOROUTINE_LEAK_FILE
            if profile == GOROUTINE_LEAK
            else PROFILE_FILES.get(profile, profile)
        )
        settings = self.settings
        received = 0
        answered = False
        loop = asyncio.get_running_loop()
        # Until the request goes out the connect and pool timeouts apply; then read_timeout
        # bounds the rest. Transports that do not trace keep the sum of both as the bound.
        deadline = asyncio.timeout(settings.connect_timeout + settings.read_timeout)

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith(".send_request_headers.started") and not deadline.expired():
                deadline.reschedule(loop.time() + settings.read_timeout)

        try:
            async with (
                deadline,
                self._http.stream(
                    "GET",
                    url,
                    headers=self._headers,
                    timeout=self._timeout,
                    extensions={"trace": trace},
                ) as response,
            ):
                answered = True
                content_type = response.headers.get("content-type", "")
                if response.status_code != 200:
                    head = bytearray()
                    async for chunk in response.aiter_raw():
                        head += chunk
                        if len(head) >= _ERROR_HEAD:
                            break
                    raise status_error(
                        Served(
                            url,
                            file,
                            response.status_code,
                            content_type,
                            bytes(head[:_ERROR_HEAD]),
                            location=response.headers.get("location", ""),
                        )
                    )
                declared = _content_length(response)
                if declared is not None and declared > settings.max_body_bytes:
                    raise ResponseTooLarge(
                        f"the response declares {declared} bytes, above the "
                        f"{settings.max_body_bytes} byte limit (max_body_bytes); nothing was read",
                        url,
                        file,
                    )
                chunks: list[bytes] = []
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received > settings.max_body_bytes:
                        raise ResponseTooLarge(
                            f"the body exceeds the {settings.max_body_bytes} byte limit "
                            f"(max_body_bytes); stopped reading after {received} bytes",
                            url,
                            file,
                        )
                    chunks.append(chunk)
                served = Served(
                    url,
                    file,
                    response.status_code,
                    content_type,
                    b"".join(chunks),
                    content_encoding=response.headers.get("content-encoding", ""),
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise EndpointUnreachable(
                    f"no connection within {settings.connect_timeout:g} s (connect_timeout): "
                    "is the pod running and the port right?",
                    url,
                    file,
                ) from None
            progress = (
                f"the body was still arriving after {received} bytes"
                if answered
                else "no response headers arrived"
            )
            raise CaptureTimeout(
                f"{progress} when the {settings.read_timeout:g} s limit (read_timeout) ran out",
                url,
                file,
            ) from None
        except httpx.ConnectError as exc:
            raise EndpointUnreachable(
                f"cannot connect ({_reason(exc)}): is the pod running and the port right?",
                url,
                file,
            ) from None
        except httpx.TransportError as exc:
            # Read/write errors, protocol errors, unsupported schemes: the connection failed
            # before a whole response arrived (often: the process just exited).
            stage = f"after {received} body bytes" if answered else "before a response"
            raise EndpointUnreachable(
                f"the connection failed {stage} ({_reason(exc)})", url, file
            ) from None
        except httpx.InvalidURL as exc:
            raise EndpointUnreachable(f"invalid URL ({exc})", url, file) from None
        if served.content_encoding:
            served = await asyncio.to_thread(
                decode_content, served, settings.max_decompressed_bytes
            )
        return served


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _not_served(error: CaptureError) -> bool:
    """A 404 for the goroutine leak profile: the target's Go does not serve it."""
    return isinstance(error, NotFound)
