"""HTTP/1.1 on a proxied stream, for the ``http_*`` toxics: httptools (llhttp) frames the
messages, the toxic changes them, and they are written out again.

A stream is parsed as requests on ``upstream`` and as responses on ``downstream``. llhttp gives
no byte offsets, so a message is re-encoded rather than cut out of the input: its head from
what the parser reported (start line, headers in their order and case), its body byte for byte
(a chunked body is re-chunked one chunk per piece read; trailers are dropped). Several messages
per connection and pipelined requests keep their order. A stream that is not HTTP from its
first byte passes through untouched; one that stops being HTTP later (a parse error) is closed,
as an HTTP proxy would; after an Upgrade (WebSocket) the rest passes through untouched.

Known limit: a response to HEAD that carries a Content-Length on a kept-alive connection is
taken to have a body (the response side does not see the request).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httptools
from pydantic import StringConstraints

from .base import A, Emit, Toxic, ToxicContext

HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]*$"
"""RFC 9110's token: what a header name may be."""
HEADER_VALUE = r"^[^\r\n\x00]*$"
"""No line breaks: a value cannot smuggle in a header or end the head."""
HeaderMap = dict[Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=HEADER_NAME)],
                 Annotated[str, StringConstraints(max_length=8192, pattern=HEADER_VALUE)]]

PREFIX_MAX = 64 << 10
"""A stream whose first head is not complete in this many bytes is taken not to be HTTP."""

STREAM_KIND = {"upstream": "request", "downstream": "response"}

REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 418: "I'm a teapot", 425: "Too Early",
    429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


@dataclass
class Head:
    """The start line and headers of one message."""

    request: bool
    version: str
    method: bytes = b""
    url: bytes = b""
    status: int = 0
    reason: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunked: bool = False
    t: float = 0.0
    """``time.monotonic()`` of the chunk in which the message began."""

    def get(self, name: str) -> bytes | None:
        key = name.lower().encode()
        return next((v for k, v in self.headers if k.lower() == key), None)

    def drop(self, name: str) -> None:
        key = name.lower().encode()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != key]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value``, where the first one was (else last)."""
        key = name.lower().encode()
        at = next((i for i, (k, _) in enumerate(self.headers) if k.lower() == key), len(self.headers))
        self.drop(name)
        self.headers.insert(min(at, len(self.headers)), (name.encode(), value.encode()))

    def encode(self) -> bytes:
        if self.request:
            start = b"%s %s HTTP/%s" % (self.method, self.url, self.version.encode())
        else:
            start = b"HTTP/%s %d %s" % (self.version.encode(), self.status, self.reason)
        lines = [start, *(k + b": " + v for k, v in self.headers)]
        return b"\r\n".join(lines) + b"\r\n\r\n"


Event = tuple[Literal["head", "body", "end", "raw"], Any]
"""("head", Head) | ("body", bytes) | ("end", Head) | ("raw", bytes): bytes passed unparsed."""


class HttpFramer:
    """One direction's parser state: ``feed`` turns bytes into message events."""

    def __init__(self, kind: str) -> None:
        self.request = kind == "request"
        parser_cls = httptools.HttpRequestParser if self.request else httptools.HttpResponseParser
        self._parser: Any = parser_cls(self)
        self._events: list[Event] = []
        self._head: Head | None = None
        self.head: Head | None = None
        """The head of the message whose events the toxic is handling (the parser may be ahead,
        in a later pipelined message)."""
        self._t = 0.0
        self.mode: Literal["http", "raw", "broken"] = "http"
        self._prefix: bytearray | None = bytearray()
        """The bytes read until the first head is complete: handed on as they are if it never is."""
        self.in_body = False
        """Inside a message whose head has been handed on."""
        self.in_head = False
        """A message began and its head is still in the parser (not handed on yet)."""

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.in_head = True
        self._head = Head(request=self.request, version="1.1", t=self._t)

    def on_url(self, url: bytes) -> None:
        assert self._head is not None
        self._head.url += url

    def on_status(self, status: bytes) -> None:
        assert self._head is not None
        self._head.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head is not None and self.in_head:  # trailers (after the body) are dropped
            self._head.headers.append((name, value))

    def on_headers_complete(self) -> None:
        head = self._head
        assert head is not None
        head.version = self._parser.get_http_version()
        if self.request:
            head.method = self._parser.get_method()
        else:
            head.status = self._parser.get_status_code()
        te = head.get("transfer-encoding") or b""
        head.chunked = te.lower().rstrip().endswith(b"chunked")
        self.in_head, self.in_body = False, True
        self._prefix = None
        self._events.append(("head", head))

    def on_body(self, body: bytes) -> None:
        self._events.append(("body", body))

    def on_message_complete(self) -> None:
        self.in_head = self.in_body = False
        self._events.append(("end", self._head))

    # -- feeding ----------------------------------------------------------------------------
    def feed(self, data: bytes, t: float) -> list[Event]:
        if self.mode != "http":
            return [("raw", data)] if self.mode == "raw" else []
        self._t = t
        self._events = []
        if self._prefix is not None:
            self._prefix += data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.mode = "raw"
            self._events.append(("raw", data[int(exc.args[0]):]))
        except httptools.HttpParserError:
            self.mode = "broken"
        if self._prefix is not None and (self.mode == "broken" or len(self._prefix) > PREFIX_MAX):
            # Not HTTP from the first byte: everything read so far, and the rest, passes as it is.
            self.mode = "raw"
            raw, self._prefix = bytes(self._prefix), None
            return [("raw", raw)]
        events, self._events = self._events, []
        return events

    def holding(self) -> bool:
        """True when bytes of the current message are in the parser or re-framed: handing the
        rest of the stream on raw would corrupt it."""
        if self.mode != "http":
            return False
        return self.in_head or (self.in_body and self._head is not None and self._head.chunked)


def encode_body(head: Head, body: bytes) -> bytes:
    if not body:
        return b""
    return b"%x\r\n%s\r\n" % (len(body), body) if head.chunked else body


def encode_end(head: Head) -> bytes:
    return b"0\r\n\r\n" if head.chunked else b""


class HttpToxic(Toxic[A]):
    """Base of the ``http_*`` toxics: one framer per connection and direction, and a hook per
    message event. ``on_event`` returns the bytes to hand on for the event (default: as parsed)."""

    def start(self, ctx: ToxicContext) -> None:
        if "framer" not in ctx.state:  # an update keeps the parse position
            ctx.state["framer"] = HttpFramer(STREAM_KIND[ctx.direction])

    def framer(self, ctx: ToxicContext) -> HttpFramer:
        framer: HttpFramer = ctx.state["framer"]
        return framer

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        framer = self.framer(ctx)
        out = bytearray()
        for event in framer.feed(data, t):
            if event[0] == "head":
                framer.head = event[1]
            out += await self.on_event(ctx, framer, event, out, emit, t)
        if out:
            await emit(bytes(out), t)
        if framer.mode == "broken":
            ctx.link.close()

    async def on_event(self, ctx: ToxicContext, framer: HttpFramer, event: Event, pending: bytearray,
                       emit: Emit, t: float) -> bytes:
        """Bytes for ``event``. ``pending`` is what this chunk produced before it, not yet handed on:
        a toxic that waits or aborts hands it on first (``flush``)."""
        return pass_through(framer, event)

    async def flush(self, pending: bytearray, emit: Emit, t: float) -> None:
        if pending:
            data = bytes(pending)
            pending.clear()
            await emit(data, t)

    def removed(self, ctx: ToxicContext) -> None:
        # Bytes of a message held in the parser, or a body re-chunked so far, cannot be
        # continued raw: close the connection (the client retries) rather than corrupt it.
        if self.framer(ctx).holding() or ctx.state.get("swallowing"):
            ctx.link.close()


def pass_through(framer: HttpFramer, event: Event) -> bytes:
    """The bytes of ``event`` unchanged (re-encoded)."""
    kind, value = event
    if kind == "head":
        return value.encode()  # type: ignore[no-any-return]
    if kind == "body":
        return encode_body(framer.head, value) if framer.head is not None else bytes(value)
    if kind == "end":
        return encode_end(value)
    return bytes(value)


def draw(toxic: Toxic[Any], seed: int | None) -> random.Random:
    """The toxic's generator, shared by its connections: the k-th message through the toxic gets
    the k-th draw, so a seeded run repeats its decisions whatever the connections."""
    rng = toxic.__dict__.get("_rng")
    if rng is None:
        rng = toxic.__dict__["_rng"] = random.Random(seed)
    return rng
