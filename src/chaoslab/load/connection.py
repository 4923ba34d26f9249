"""A minimal HTTP/1.1 client connection and pool on asyncio transports, parsed by httptools.

Why not aiohttp or httpx: measured in bench/loadgen.py, aiohttp tops out near 15k req/s on one
core and httpx far below it, while the generator must sustain a fixed rate with sub-5 ms lag.
This keeps only what a load generator needs: keep-alive connections, one request in flight
per connection, the status, and the body only when an ack rule reads an id from it. Parsing
(chunked bodies, keep-alive rules) is httptools' (the C parser uvicorn uses).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools


class HttpError(Exception):
    """The exchange broke after the request may have been sent: its effect is unknown."""


class ConnectError(HttpError):
    """No connection could be made: the request was never sent."""


class Target:
    """Where requests go: host, port, TLS, path and the Host header's authority."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r} (expected http:// or https://)")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default = (self.port == 443) if self.tls else (self.port == 80)
        self.authority = parts.netloc if not default else self.host

    def same_origin(self, other: Target) -> bool:
        return (self.host, self.port, self.tls) == (other.host, other.port, other.tls)


def encode_request(method: str, target: Target, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if not any(k.lower() == "host" for k in headers):  # a user's Host header wins (virtual hosts)
        lines.append(f"Host: {target.authority}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


#: Called once per request with (status, body, None) or (None, b"", error).
Reply = Callable[[int | None, bytes, Exception | None], None]


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, answers delivered by callback."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._reply: Reply | None = None
        self._keep_body = False
        self._body: list[bytes] = []
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection lost: {exc or 'closed by the server'}"))

    # httptools callbacks (on_body only exists on _BodyConnection: the parser skips the call otherwise)
    def on_message_complete(self) -> None:
        reply, self._reply = self._reply, None
        status = self._parser.get_status_code()
        body = b"".join(self._body) if self._keep_body else b""
        if self._parser.should_keep_alive():
            self._pool.release(self)
        else:
            self.close()
        if reply is not None:
            reply(status, body, None)

    # use
    def start(self, raw: bytes, keep_body: bool, reply: Reply) -> None:
        assert self._transport is not None
        self._reply = reply
        self._keep_body = keep_body
        self._body = []
        self._transport.write(raw)

    def abandon(self) -> None:
        """The generator gave up on the request: nobody is told, the connection is unusable."""
        self._reply = None
        self.close()

    def _fail(self, exc: Exception) -> None:
        reply, self._reply = self._reply, None
        self.close()
        if reply is not None:
            reply(None, b"", exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool.forget(self)
            if self._transport is not None:
                self._transport.abort()


class _BodyConnection(_Connection):
    """A connection that keeps response bodies (an ack rule reads the written id from them)."""

    def on_body(self, body: bytes) -> None:
        if self._keep_body:
            self._body.append(body)


class _Queued:
    """A request waiting for a connection (none idle): the next connection released or opened
    takes it. Plain data in a queue, no task or future per request: when every connection is
    busy (the rates near a generator's limit) this is most requests (bench/loadgen.py)."""

    __slots__ = ("cancelled", "conn", "keep_body", "raw", "reply")

    def __init__(self, raw: bytes, keep_body: bool, reply: Reply) -> None:
        self.raw = raw
        self.keep_body = keep_body
        self.reply = reply
        self.conn: _Connection | None = None
        self.cancelled = False

    def cancel(self) -> None:
        if self.conn is not None:
            self.conn.abandon()
        else:
            self.cancelled = True  # skipped when its turn comes


class Pool:
    """Keep-alive connections to one origin, at most ``size``; requests beyond wait their turn.

    Capping connections matters under overload: opening a new connection for every late
    request makes a slow system slower (and the generator with it). A request that finds no
    idle connection opens one if there is room (one attempt per request: a refused connection
    fails the oldest waiting request), else waits for the next one released.
    """

    def __init__(self, target: Target, size: int, keep_body: bool = False) -> None:
        self.target = target
        self.size = size
        self._protocol = _BodyConnection if keep_body else _Connection
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._opening = 0
        self._queue: deque[_Queued] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._ssl = ssl.create_default_context() if target.tls else None

    def submit(self, raw: bytes, keep_body: bool, reply: Reply) -> Callable[[], None]:
        """Send a request; ``reply`` gets its answer. Returns how to abandon it."""
        if self._idle:  # the common case: one write
            conn = self._idle.pop()
            conn.start(raw, keep_body, reply)
            return conn.abandon
        queued = _Queued(raw, keep_body, reply)
        self._queue.append(queued)
        if len(self._all) + self._opening < self.size:
            self._open()
        return queued.cancel

    def _open(self) -> None:
        self._opening += 1
        task = self.loop.create_task(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: self._protocol(self), self.target.host, self.target.port, ssl=self._ssl
            )
        except OSError as exc:
            # the connection was never made: the oldest waiting request cannot have been sent
            self._opening -= 1
            queued = self._next()
            if queued is not None:
                queued.reply(None, b"", ConnectError(str(exc) or type(exc).__name__))
            return
        self._opening -= 1
        if self._closed:
            conn.close()
            return
        self._all.add(conn)
        self.release(conn)

    def _next(self) -> _Queued | None:
        queue = self._queue
        while queue:
            queued = queue.popleft()
            if not queued.cancelled:
                return queued
        return None

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            return
        queued = self._next() if self._queue else None
        if queued is None:
            self._idle.append(conn)
            return
        queued.conn = conn
        conn.start(queued.raw, queued.keep_body, queued.reply)

    def forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        # a connection closed: room to open one for a waiting request
        if self._queue and not self._closed and len(self._all) + self._opening < self.size:
            self._open()

    def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._all):
            conn.close()
