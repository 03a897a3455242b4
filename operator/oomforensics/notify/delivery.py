"""Posting a notification to a sink's URL (httpx).

A sink's URL is a credential (Slack's incoming-webhook URL is the key to post in a channel):
it is read from a Secret and never written anywhere, so a failure's message names the sink,
never the URL (httpx puts it in some of its errors: it is cut out).
"""

from __future__ import annotations

import httpx

from oomforensics import __version__
from oomforensics.errors import OomForensicsError
from oomforensics.notify.messages import Payload

TIMEOUT = 10.0  # seconds for one delivery: a sink that takes longer is failing
MAX_ANSWER = 200  # characters of a refusal's body kept in the message (Slack says why there)


class DeliveryFailed(OomForensicsError):
    """The sink did not take the event: unreachable, too slow, or an answer other than 2xx."""


def check_url(url: str) -> str:
    """An http(s) URL, else a message saying what is wrong (without the URL itself)."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise DeliveryFailed(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DeliveryFailed("expected an http:// or https:// URL with a host")
    return url.strip()


class WebhookClient:
    """One HTTP client for every sink of every investigation (connections kept alive)."""

    def __init__(self, http: httpx.AsyncClient | None = None, timeout: float = TIMEOUT) -> None:
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post(self, url: str, payload: Payload) -> None:
        url = check_url(url)
        headers = {
            "Content-Type": payload.content_type,
            "User-Agent": f"oomforensics/{__version__}",
        }
        try:
            response = await self._http.post(url, content=payload.body, headers=headers)
        except httpx.HTTPError as exc:
            message = str(exc) or type(exc).__name__
            raise DeliveryFailed(f"{type(exc).__name__}: {_without(message, url)}") from None
        if not response.is_success:
            answer = _without(response.text.strip(), url)[:MAX_ANSWER]
            raise DeliveryFailed(
                f"HTTP {response.status_code} {response.reason_phrase}"
                + (f": {answer}" if answer else "")
            )


def _without(text: str, url: str) -> str:
    """The text with the URL (and its path, the secret part of a Slack URL) cut out."""
    path = httpx.URL(url).raw_path.decode(errors="replace")
    text = text.replace(url, "<sink URL>")
    return text.replace(path, "<path>") if len(path) > 1 else text
