"""A small HTTP/1.1 server that misbehaves on purpose, for the capture client's tests.

Plain asyncio streams, one request per connection (every response says Connection: close).
Routes map a request target (path and query, e.g. ``/debug/pprof/heap?debug=1``) to a
handler; unknown targets get Go's ``404 page not found``. The server records every exchange
(what was asked, how much body it managed to send, whether the client hung up) and an
ordered log of arrivals and completions, so tests assert on what happened, not on timing.

    async with HostileServer() as server:
        server.route("/debug/pprof/heap", reply(b"<html>login</html>", content_type="text/html"))
        server.route("/debug/pprof/goroutine?debug=1", hang())
        result = await client.capture(server.pprof_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Self

CHUNK = 64 * 1024


@dataclass
class Exchange:
    target: str
    headers: dict[str, str]  # names lower-cased
    sent: int = 0  # body bytes the kernel accepted (within one chunk)
    finished: bool = False  # the handler wrote its whole response
    client_gone: bool = False  # the client closed the connection while the handler was writing
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the handler is done


Handler = Callable[["Exchange", asyncio.StreamWriter, "HostileServer"], Awaitable[None]]


class HostileServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.exchanges: list[Exchange] = []
        # "arrived <target>" and "finished <target>" (or "gone <target>"), in the order seen.
        self.log: list[str] = []
        self.closing = asyncio.Event()
        self._arrivals: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    @property
    def pprof_url(self) -> str:
        return self.url + "/debug/pprof"

    def route(self, target: str, handler: Handler) -> None:
        self.routes[target] = handler

    def arrival(self, target: str) -> asyncio.Event:
        """An event set when a request for `target` has arrived."""
        return self._arrivals.setdefault(target, asyncio.Event())

    def targets(self) -> list[str]:
        return [exchange.target for exchange in self.exchanges]

    def exchange(self, target: str) -> Exchange:
        return next(e for e in self.exchanges if e.target == target)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closing.set()
        assert self._server is not None
        self._server.close()
        # Hang up on every client: handlers blocked in a write end with ConnectionResetError,
        # waiting ones see `closing`. (Cancelling them instead makes asyncio 3.11 log errors.)
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=5)
            for task in stuck:
                task.cancel()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        exchange: Exchange | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            _method, target, _version = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            exchange = Exchange(target, headers)
            self.exchanges.append(exchange)
            self.log.append(f"arrived {target}")
            self.arrival(target).set()
            handler = self.routes.get(target, not_found)
            await handler(exchange, writer, self)
            exchange.finished = True
            self.log.append(f"finished {target}")
        except (ConnectionError, asyncio.IncompleteReadError):
            if exchange is not None:
                exchange.client_gone = True
                self.log.append(f"gone {exchange.target}")
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            if exchange is not None:
                exchange.ended.set()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def write_head(
    writer: asyncio.StreamWriter,
    status: int = 200,
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


async def send(exchange: Exchange, writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write `data` and count it once the transport has taken it."""
    if writer.is_closing():
        raise ConnectionResetError("client gone")
    writer.write(data)
    await writer.drain()
    exchange.sent += len(data)


def reply(
    body: bytes,
    status: int = 200,
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> Handler:
    async def handle(exchange: Exchange, writer: asyncio.StreamWriter, _: HostileServer) -> None:
        await write_head(
            writer, status, content_type, {"Content-Length": str(len(body)), **(headers or {})}
        )
        await send(exchange, writer, body)

    return handle


not_found = reply(b"404 page not found\n", status=404)


def hang() -> Handler:
    """Read the request and never answer (until the server shuts down)."""

    async def handle(
        exchange: Exchange, writer: asyncio.StreamWriter, server: HostileServer
    ) -> None:
        await server.closing.wait()

    return handle


def trickle(interval: float, content_type: str = "application/octet-stream") -> Handler:
    """A slowloris: headers at once, then one byte every `interval` seconds, forever."""

    async def handle(
        exchange: Exchange, writer: asyncio.StreamWriter, server: HostileServer
    ) -> None:
        await write_head(writer, 200, content_type)
        while not server.closing.is_set():
            await send(exchange, writer, b"\x1f")
            # The attack's pace (not synchronisation); a server shutdown cuts it short.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.closing.wait(), interval)

    return handle


def in_parts(body: bytes, parts: int, interval: float, **reply_args: str) -> Handler:
    """A slow but honest endpoint: the body in `parts` pieces, `interval` seconds apart."""

    async def handle(exchange: Exchange, writer: asyncio.StreamWriter, _: HostileServer) -> None:
        await write_head(writer, headers={"Content-Length": str(len(body))}, **reply_args)
        size = -(-len(body) // parts)
        for start in range(0, len(body), size):
            await asyncio.sleep(interval)  # the endpoint's pace, not synchronisation
            await send(exchange, writer, body[start : start + size])

    return handle


def flood(total: int, declare_length: bool) -> Handler:
    """`total` bytes of body, with or without Content-Length (without: until close)."""

    async def handle(exchange: Exchange, writer: asyncio.StreamWriter, _: HostileServer) -> None:
        # A small send buffer keeps what the kernel holds for us (and counts as sent) small.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
        headers = {"Content-Length": str(total)} if declare_length else {}
        await write_head(writer, 200, "application/octet-stream", headers)
        block = b"\x00" * CHUNK
        for _ in range(total // CHUNK):
            await send(exchange, writer, block)

    return handle


def after(event: asyncio.Event, handler: Handler) -> Handler:
    """Answer with `handler` only once `event` is set (e.g. another request has arrived)."""

    async def handle(
        exchange: Exchange, writer: asyncio.StreamWriter, server: HostileServer
    ) -> None:
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(server.closing.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if event.is_set():
            await handler(exchange, writer, server)

    return handle


def raw(data: bytes) -> Handler:
    """Write `data` as the whole response, HTTP or not, and close."""

    async def handle(exchange: Exchange, writer: asyncio.StreamWriter, _: HostileServer) -> None:
        writer.write(data)
        await writer.drain()

    return handle


def truncated(body: bytes, declared: int) -> Handler:
    """Declare `declared` bytes, send `body` (fewer), then close: a process dying mid-write."""

    async def handle(exchange: Exchange, writer: asyncio.StreamWriter, _: HostileServer) -> None:
        await write_head(writer, 200, "application/octet-stream", {"Content-Length": str(declared)})
        await send(exchange, writer, body)

    return handle


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
