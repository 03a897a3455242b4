"""A notification sink of the tests' own: a real HTTP server on loopback that records every
request it gets (path, headers, JSON body, what it answered) and can be told to fail a given
number of requests first (a sink that fails, then recovers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    status: int  # what the receiver answered
    content_type: str
    body: Any  # the JSON it got

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    got: list[Received] = field(default_factory=list)
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def fail(self, path: str, times: int, status: int = 503) -> None:
        """Answer the next `times` requests to `path` with `status`."""
        self._failures.setdefault(path, []).extend([status] * times)

    def accepted(self, path: str | None = None) -> list[Received]:
        return [r for r in self.got if r.accepted and (path is None or r.path == path)]

    def refused(self, path: str | None = None) -> Iterator[Received]:
        return (r for r in self.got if not r.accepted and (path is None or r.path == path))

    async def wait_accepted(
        self, count: int, path: str | None = None, timeout: float = 30
    ) -> list[Received]:
        """The first `count` requests accepted (to `path`), once they have arrived."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.accepted(path)) >= count)

        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            seen = [(r.path, r.status) for r in self.got]
            raise AssertionError(
                f"the receiver accepted {len(self.accepted(path))} of {count} requests to "
                f"{path or 'any path'} in {timeout:g}s; it got {seen}"
            ) from None
        return self.accepted(path)[:count]

    async def wait_requests(self, count: int, timeout: float = 30) -> list[Received]:
        """The first `count` requests, whatever was answered."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.got) >= count), timeout)
        return self.got[:count]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        pending = self._failures.get(request.path) or []
        status = pending.pop(0) if pending else 200
        async with self._changed:
            self.got.append(Received(request.path, status, request.content_type, body))
            self._changed.notify_all()
        return web.Response(status=status, text="ok" if status == 200 else "try later")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # The port the kernel chose when asked for 0: the runner lists its bound addresses.
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
