"""One proxied TCP connection: two sockets and two streams (upstream, downstream) between them.

Speed comes from the fast paths. While a direction has no active toxic, ``data_received``
writes straight into the other socket's transport and flow control is the transports' own
(pause the reader when the writer's buffer is full); once such a direction carries a bulk flow
(one read of ``SPLICE_FROM`` bytes) its bytes are spliced from socket to socket in the kernel
(``splice.py``) until a toxic arrives. Only a direction with toxics gets a pump task and a
queue; when its last toxic goes and its queue drains, the pump exits and the fast paths resume.
Toxics are added and removed on live connections without losing queued bytes: a removed toxic
is skipped by chunks that reach it later and wakes the chunk it is holding, which moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

from . import splice
from .toxics import ToxicContext

if TYPE_CHECKING:
    from .model import ToxicSpec

QUEUE_HIGH = 1 << 20
"""Bytes queued in front of the toxics before the source stops being read (TCP backpressure)."""
QUEUE_LOW = 256 << 10
WRITE_HIGH = 1 << 20
WRITE_LOW = 256 << 10


class Side(asyncio.Protocol):
    """One socket of a connection: the client's (accepted) or the upstream's (dialled)."""

    def __init__(self, conn: Connection, label: str) -> None:
        self.conn = conn
        self.label = label
        self.transport: asyncio.Transport | None = None
        self.out: Stream | None = None  # the stream this side's bytes feed
        self.into: Stream | None = None  # the stream that writes into this side
        self._blocks: set[str] = set()
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self._apply()
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        if self.out is not None:
            self.out.feed(data)

    def eof_received(self) -> bool:
        if self.out is not None:
            self.out.feed_eof()
        return True  # keep our write half open: the other direction may still be talking

    def pause_writing(self) -> None:
        if self.into is not None:
            self.into.sink_paused(True)

    def resume_writing(self) -> None:
        if self.into is not None:
            self.into.sink_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self)

    # -- reading control -------------------------------------------------------------------
    def block(self, reason: str) -> None:
        self._blocks.add(reason)
        self._apply()

    def unblock(self, reason: str) -> None:
        self._blocks.discard(reason)
        self._apply()

    def _apply(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        want_paused = bool(self._blocks)
        if want_paused != self._paused:
            self._paused = want_paused
            if want_paused:
                t.pause_reading()
            else:
                t.resume_reading()

    def writable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


class Stream:
    """One direction of a connection: bytes read from ``src`` go through toxics into ``dst``."""

    def __init__(self, conn: Connection, direction: str, src: Side, dst: Side) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        src.out = self
        dst.into = self
        # The transport calls the stream directly: one Python call per read instead of two
        # (uvloop looks ``data_received`` up once, when the protocol is set).
        src.data_received = self.feed  # type: ignore[method-assign]
        self.chain: list[ToxicContext] = []
        self.done = False
        self._queue: deque[tuple[bytes | None, float]] = deque()
        self._queued = 0
        self._pump: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._sink_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._early: list[bytes] = []
        self._early_eof = False
        self._parked: dict[str, dict[str, Any]] = {}  # state of toxics an update drew off
        self._splice: splice.Splice | None = None
        self._bulk = False  # the last read through the toxics was a big one
        # [bytes read from src, bytes written to dst, of which spliced], shared with /metrics.
        self.bytes = conn.owner.byte_counters(direction)

    def connected(self) -> None:
        """The destination socket exists now: pass on what arrived before it did."""
        early, self._early = self._early, []
        for data in early:
            self.feed(data)
        if self._early_eof:
            self.feed_eof()
        self.src.unblock("connect")

    # -- toxics ----------------------------------------------------------------------------
    def add(self, spec: ToxicSpec, index: int | None = None, state: dict[str, Any] | None = None) -> None:
        """Put the toxic on this connection if its toxicity draw says so. ``state``: what the
        toxic kept on this connection before (an update), kept also when the draw says no."""
        if not _drawn(spec):
            if state is not None:
                self._parked[spec.name] = state
            return
        self._leave_splice()
        ctx = ToxicContext(spec.toxic, self.conn, self.direction)
        if state is not None:
            ctx.state = state
        self.chain.insert(len(self.chain) if index is None else index, ctx)
        ctx.toxic.start(ctx)

    def remove(self, spec: ToxicSpec) -> None:
        """The toxic was removed through the API: stop it and let it clean up (a timeout closes
        the connection it was holding)."""
        self._parked.pop(spec.name, None)
        self._leave_splice()  # its share of the spliced bytes is counted before it goes
        for i, ctx in enumerate(self.chain):
            if ctx.toxic is spec.toxic:
                ctx.stop()
                del self.chain[i]
                self._wake()
                ctx.toxic.removed(ctx)
                return

    def replace(self, old: ToxicSpec, new: ToxicSpec) -> None:
        """An update restarts the toxic on this connection and draws its toxicity again, as
        Toxiproxy restarts each live link's stub (1 -> 0 takes it off a connection that has it).
        It keeps its place in the chain and its per-connection state, also across a spell of
        being drawn off (bytes counted by limit_data stay counted: Toxiproxy's stub outlives the
        update and a no-op run)."""
        self._leave_splice()  # the bytes spliced meanwhile are counted into the state kept
        for i, ctx in enumerate(self.chain):
            if ctx.toxic is old.toxic:
                ctx.stop()
                del self.chain[i]
                self._wake()
                self.add(new, i, {k: v for k, v in ctx.state.items() if k != "timer"})
                return
        self.add(new, state=self._parked.pop(new.name, None))  # not on this connection: draw again

    def stop_all(self) -> None:
        for ctx in self.chain:
            ctx.stop()
        self.chain.clear()
        self._wake()

    # -- data ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        # The per-message path of request/response traffic: kept to a few attribute reads.
        n = len(data)
        t = self.dst.transport
        if t is None:
            # The upstream is still being dialled: hold the bytes and stop reading until it answers.
            self._early.append(data)
            self.src.block("connect")
            return
        counts = self.bytes
        counts[0] += n
        if self._pump is None and not self.chain and self._splice is None:
            if not t.is_closing():
                t.write(data)
                counts[1] += n
                if n >= SPLICE_FROM and not t.get_write_buffer_size():
                    self._try_splice()
            return
        if self._splice is not None:  # not expected (the source is paused): keep the order anyway
            self._leave_splice()
            if not self.chain:
                t.write(data)
                counts[1] += n
                return
        self._bulk = n >= SPLICE_FROM
        self._queue.append((data, time.monotonic()))  # uvloop's loop.time() is in whole ms
        self._queued += n
        if self._queued > QUEUE_HIGH:
            self.src.block("queue")
        self._ensure_pump()

    def feed_eof(self) -> None:
        if self.dst.transport is None:
            self._early_eof = True
            return
        if self._pump is None and not self.chain:
            self._end()
            return
        self._queue.append((None, time.monotonic()))
        self._ensure_pump()

    def sink_paused(self, paused: bool) -> None:
        self._sink_paused = paused
        if paused:
            self.src.block("sink")
        else:
            self.src.unblock("sink")
            if self._writable is not None and not self._writable.done():
                self._writable.set_result(None)

    # -- pump ------------------------------------------------------------------------------
    def _ensure_pump(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        else:
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.conn.closed:
                if not self._queue:
                    if not self.chain:
                        return  # nothing to do: the fast path takes over again
                    self._wakeup = loop.create_future()
                    if self._bulk:
                        self._try_splice()  # toxics that only count let a bulk flow be spliced
                    await self._wakeup
                    self._wakeup = None
                    continue
                data, t = self._queue.popleft()
                if data is None:
                    chain = [c for c in self.chain if not c.stopped]
                    for ctx in chain:
                        await ctx.toxic.before_close(ctx)
                    self._end()
                    return
                self._queued -= len(data)
                if self._queued < QUEUE_LOW:
                    self.src.unblock("queue")
                await self._stage(tuple(self.chain), 0, data, t)
        finally:
            self._pump = None
            self._wakeup = None

    async def _stage(self, chain: tuple[ToxicContext, ...], i: int, data: bytes, t: float) -> None:
        # Toxics removed since this chunk started are skipped: the data is passed on, never lost.
        while i < len(chain) and chain[i].stopped:
            i += 1
        if i == len(chain):
            await self._write(data)
            return
        ctx = chain[i]
        await ctx.toxic.pipe(ctx, data, t, functools.partial(self._stage, chain, i + 1))

    async def _write(self, data: bytes) -> None:
        while self._sink_paused and self.dst.writable():
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable
        t = self.dst.transport
        if data and t is not None and not t.is_closing():
            t.write(data)
            self.bytes[1] += len(data)

    def _end(self) -> None:
        """The source closed and everything it sent has been passed on: pass the close on."""
        if self.done:
            return
        self.done = True
        t = self.dst.transport
        if t is not None and not t.is_closing():
            if t.can_write_eof():
                t.write_eof()
            else:
                t.close()
        self.conn.stream_done()

    # -- the zero-copy path ----------------------------------------------------------------
    def _try_splice(self) -> None:
        """Hand this direction to the kernel if nothing needs to see its bytes: no toxic but ones
        that only count (then no more than they let pass), no pump at work, nothing queued, and
        nothing left in the destination transport's buffer (spliced bytes would overtake it).
        Otherwise the next big read tries again."""
        if (
            not SPLICE
            or self._splice is not None
            or self._queue
            or (self._pump is not None and self._wakeup is None)  # a pump busy with a chunk
            or self.done
            or self.conn.closed
        ):
            return
        limit = min((ctx.toxic.passes_unseen(ctx) for ctx in self.chain if not ctx.stopped), default=None)
        if limit == 0:
            return
        src, dst = self.src.transport, self.dst.transport
        if src is None or dst is None or src.is_closing() or dst.is_closing() or dst.get_write_buffer_size():
            return
        src_sock, dst_sock = src.get_extra_info("socket"), dst.get_extra_info("socket")
        if src_sock is None or dst_sock is None:
            return
        try:
            self._splice = splice.Splice(
                asyncio.get_running_loop(), src_sock.fileno(), dst_sock.fileno(), self.bytes,
                self._spliced_eof, self._spliced_error, limit, self._leave_splice,
            )
        except OSError:
            return  # out of descriptors, say: the userspace path carries on
        self.src.block("splice")

    def _leave_splice(self) -> None:
        """A toxic arrives: what the pipe holds goes out first, through the destination transport
        (whose buffer is empty while splicing), then the source is read by its transport again."""
        sp, self._splice = self._splice, None
        if sp is None:
            return
        left = sp.stop()
        t = self.dst.transport
        if left and t is not None and not t.is_closing():
            t.write(left)
            self.bytes[1] += len(left)
        self.src.unblock("splice")
        self._credit(sp.read)

    def _credit(self, n: int) -> None:
        """Tell the toxics that only count about the bytes that went by them in the kernel (a
        limit_data that reaches its limit closes the connection here)."""
        for ctx in list(self.chain):
            if n and not ctx.stopped:
                ctx.toxic.passed_unseen(ctx, n)

    def _spliced_eof(self) -> None:
        sp, self._splice = self._splice, None
        if sp is not None:
            self._credit(sp.read)
        # The source stays paused: its transport has nothing more to read. With toxics the close
        # goes through them (their before_close), else straight on.
        self.feed_eof()

    def _spliced_error(self, exc: OSError) -> None:
        self._splice = None
        self.conn.close()

    def cancel(self) -> None:
        if self._splice is not None:
            self._splice.stop()
            self._splice = None
        self.stop_all()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._pump is not None:
            self._pump.cancel()


SPLICE = splice.AVAILABLE and os.environ.get("CHAOSLAB_PROXY_SPLICE", "1") != "0"
"""``CHAOSLAB_PROXY_SPLICE=0`` keeps every byte on the userspace path (to compare the two)."""
SPLICE_FROM = 64 << 10
"""A direction is spliced once one read brings this much: a bulk flow. Small messages stay on the
transport path, which costs the same two system calls per message as splicing them and no
set-up (a pipe and two descriptors per direction): request/response traffic and short
connections measured slower spliced (bench/proxy.py: round trip and connections per second)."""


def _drawn(spec: ToxicSpec) -> bool:
    """Whether a toxic acts on one connection: drawn once per connection (and again at each
    update of the toxic), as Toxiproxy does."""
    return spec.toxicity >= 1.0 or random.random() < spec.toxicity


class Connection:
    """A client socket, its upstream socket, and the two streams between them."""

    def __init__(self, owner: ConnectionOwner, upstream: tuple[str, int], toxics: Iterable[ToxicSpec]) -> None:
        self.owner = owner
        self.upstream_addr = upstream
        self.client = Side(self, "client")
        self.server = Side(self, "upstream")
        self.streams = {
            "upstream": Stream(self, "upstream", self.client, self.server),
            "downstream": Stream(self, "downstream", self.server, self.client),
        }
        self.closed = False
        self._connect: asyncio.Task[None] | None = None
        self._lost = 0
        for spec in toxics:
            self.streams[spec.stream].add(spec)

    def side_made(self, side: Side) -> None:
        if side is self.client:
            self.owner.connection_opened(self)
            self._connect = asyncio.get_running_loop().create_task(self._dial())
        elif not self.closed:
            self.streams["upstream"].connected()

    async def _dial(self) -> None:
        host, port = self.upstream_addr
        try:
            await asyncio.get_running_loop().create_connection(lambda: self.server, host, port)
        except (OSError, asyncio.CancelledError):
            self.close()
            return
        if self.closed:
            self.close()

    # -- LinkControl -----------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            self._close_transports()
            return
        self.closed = True
        for stream in self.streams.values():
            stream.cancel()
        if self._connect is not None and not self._connect.done():
            self._connect.cancel()
        self._close_transports()

    def reset(self) -> None:
        for side in (self.client, self.server):
            t = side.transport
            if t is None or t.is_closing():
                continue
            sock = t.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.abort()
        self.close()

    def _close_transports(self) -> None:
        for side in (self.client, self.server):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()

    # -- bookkeeping -----------------------------------------------------------------------
    def stream_done(self) -> None:
        if all(s.done for s in self.streams.values()):
            self.close()

    def side_lost(self, side: Side) -> None:
        self._lost += 1
        # One socket gone means the connection is over; the other is closed after its buffer.
        self.close()
        if self._lost >= 2 or self.server.transport is None:
            self.owner.connection_closed(self)


class ConnectionOwner(Protocol):
    """What a connection reports to (its proxy). ``connection_closed`` may come twice."""

    def connection_opened(self, conn: Connection) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...

    def byte_counters(self, direction: str) -> list[int]:
        """The proxy's [received, sent, spliced] byte totals of ``direction``, updated in place."""
        ...
