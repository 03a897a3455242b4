"""Headless Chromium driven over the DevTools protocol: open a page, collect what went wrong
(console errors, uncaught exceptions, error log entries, requests that left the file), query
the DOM and take a screenshot.

Chromium is Debian's `chromium` (/usr/bin/chromium, installed by hack/get-chromium.sh from
`make setup`). It runs with a fresh, empty profile in a temporary directory and the flags this
machine needs (root, no sandbox, closed network).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

DEFAULT_CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
START_TIMEOUT = 30.0


class ChromiumMissing(RuntimeError):
    pass


def require_chromium() -> Path:
    """The Chromium binary ($OOMF_CHROMIUM, else Debian's); a clear failure when missing."""
    binary = Path(os.environ.get("OOMF_CHROMIUM") or DEFAULT_CHROMIUM)
    if not os.access(binary, os.X_OK):
        raise ChromiumMissing(
            f"{binary} not found: the report browser tests need Debian's chromium; run "
            "`make setup` (hack/get-chromium.sh installs it) or set OOMF_CHROMIUM"
        )
    return binary


@dataclass
class PageProblems:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # URLs other than the page, data: URLs

    def all(self) -> list[str]:
        return [*self.console_errors, *self.exceptions, *self.log_errors, *self.requests]


class Browser:
    """`async with Browser() as b: page = await b.open(path)`."""

    def __init__(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="oomf-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __aexit__)
        self.port = 0

    async def __aenter__(self) -> Self:
        binary = require_chromium()
        self._process = subprocess.Popen(
            [str(binary), *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        active = Path(self._profile) / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not (active.is_file() and active.read_text().strip()):
            if self._process.poll() is not None or loop.time() > deadline:
                self._stderr.seek(0)
                tail = self._stderr.read().decode(errors="replace")[-2000:]
                await self.__aexit__(None, None, None)
                raise RuntimeError(f"chromium did not start its DevTools endpoint:\n{tail}")
            await asyncio.sleep(0.1)
        self.port = int(active.read_text().splitlines()[0])
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                await asyncio.to_thread(self._process.wait, 10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                await asyncio.to_thread(self._process.wait, 10)
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def page(self, width: int = 1280, height: int = 900) -> Any:
        assert self._session is not None
        async with self._session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as r:
            target = await r.json()
        async with self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws, width, height)
            reader = asyncio.create_task(page.read())
            try:
                await page.start()
                yield page
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, width: int, height: int) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.problems = PageProblems()
        self.url = ""
        self.size = (width, height)

    async def read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                    else:
                        future.set_result(data.get("result", {}))
                continue
            method, params = data.get("method", ""), data.get("params", {})
            self._record(method, params)
            for waiter in self._events.pop(method, []):
                if not waiter.done():
                    waiter.set_result(params)

    def _record(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.problems.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text")
            self.problems.exceptions.append(f"uncaught: {description}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.problems.log_errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if url != self.url and not url.startswith(("data:", "about:")):
                self.problems.requests.append(f"request: {url}")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        return await asyncio.wait_for(future, 60)

    def event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault(method, []).append(future)
        return future

    async def start(self) -> None:
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")
        width, height = self.size
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        # No scrollbar: a full-page capture would otherwise reflow the page without it, and
        # element boxes measured before would be off.
        await self.send("Emulation.setScrollbarsHidden", hidden=True)

    async def open(self, path: Path) -> None:
        self.url = path.resolve().as_uri()
        loaded = self.event("Page.loadEventFired")
        result = await self.send("Page.navigate", url=self.url)
        if result.get("errorText"):
            raise RuntimeError(f"cannot open {self.url}: {result['errorText']}")
        await asyncio.wait_for(loaded, 60)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, out: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            content = metrics["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": content["width"],
                "height": content["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        shot = await self.send("Page.captureScreenshot", **params)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    async def element_screenshot(self, selector: str, out: Path, scale: float = 1.5) -> Path:
        """A screenshot of the first element matching `selector` (for a closer look)."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return {x: r.left + window.scrollX, "
            "y: r.top + window.scrollY, width: r.width, height: r.height}; })()"
        )
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            clip={**box, "scale": scale},
            captureBeyondViewport=True,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out
