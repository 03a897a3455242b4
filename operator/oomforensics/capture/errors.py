"""Why a profile could not be captured. Messages are meant to be shown to a user as-is.

| error               | what happened                                                        |
|---------------------|----------------------------------------------------------------------|
| EndpointUnreachable | no connection (refused, DNS, connect timeout, bad URL), or the       |
|                     | connection broke before the whole response arrived (process exited) |
| CaptureTimeout      | connected, but the whole response did not arrive within read_timeout |
| NotPprofEndpoint    | something else answered: a status other than 200, an HTML page, or a |
|                     | body that is not a profile at all (not gzip and not protobuf)        |
| ResponseTooLarge    | body or decompressed profile above its cap (reading stops at the cap)|
| InvalidResponse     | the right kind of content, but damaged: bad gzip, bad protobuf,      |
|                     | text without the expected pprof header                               |
"""

from oomforensics.errors import OomForensicsError


class CaptureError(OomForensicsError):
    """A profile that could not be captured from one URL.

    `profile` names the file that is missing (heap.pb.gz, heap.txt, ...), `url` the request
    that failed and `detail` what came back, with a hint where one helps.
    """

    # url and profile are positional-or-keyword so that pickling (which replays args) works.
    def __init__(self, detail: str, url: str, profile: str) -> None:
        super().__init__(detail, url, profile)
        self.detail = detail
        self.url = url
        self.profile = profile

    def __str__(self) -> str:
        return f"cannot capture {self.profile} from {self.url}: {self.detail}"


class EndpointUnreachable(CaptureError):
    """No connection, or the connection was lost before the response was complete."""


class CaptureTimeout(CaptureError):
    """Connected, but the response did not arrive in time (a hung or trickling endpoint)."""


class NotPprofEndpoint(CaptureError):
    """The URL answered with something other than a pprof profile (error status, HTML page)."""


class NotFound(NotPprofEndpoint):
    """HTTP 404: nothing is served at that URL (for an optional profile, simply absent)."""


class ResponseTooLarge(CaptureError):
    """The body, or the profile inside it once decompressed, is above the configured cap."""


class InvalidResponse(CaptureError):
    """The response looks like a profile of the expected kind but does not parse."""
