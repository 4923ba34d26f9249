"""The zero-copy path of a direction with no toxic: bytes move socket -> pipe -> socket inside the
kernel (splice(2)) and never become Python objects.

A direction with no toxic only forwards, so the proxy need not see its bytes. Moving them with
``recv``/``send`` through the event loop copies each byte twice and builds a ``bytes`` per read;
splicing moves page references, which is what let the proxy reach a direct connection's
throughput. The connection's transports keep their sockets: this direction reads its source
through a duplicate descriptor while the source transport's reading is paused, and writes its
destination through another while the destination transport has nothing buffered (the
destination transport's reading belongs to the other direction and goes on).

``stop`` hands back what the pipe still holds, so the direction can pass it on before anything
else when a toxic arrives: no byte is lost, doubled or reordered by a switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable

AVAILABLE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
"""Linux with Python 3.10+; elsewhere every direction takes the userspace path."""

PIPE_SIZE = 1 << 20
"""Asked-for pipe capacity: one splice moves up to this much (the kernel may grant less; an
unprivileged user is capped by /proc/sys/fs/pipe-max-size)."""

ROUNDS = 16
"""Most socket -> pipe -> socket rounds per wake-up, so one bulk connection cannot starve the rest."""

_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class Splice:
    """Moves bytes from ``src_fd`` to ``dst_fd`` until EOF, an error, or ``stop``.

    ``counters`` is the direction's [received, sent, spliced] list, updated in place.
    ``on_eof`` runs once the source closed and everything read has been written; ``on_error``
    when either socket fails (a reset, a broken pipe). With a ``limit`` no more than that many
    bytes are read, and ``on_limit`` runs once they are all written. ``read`` counts the bytes
    taken from the source."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src_fd: int,
        dst_fd: int,
        counters: list[int],
        on_eof: Callable[[], None],
        on_error: Callable[[OSError], None],
        limit: int | None = None,
        on_limit: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._limit = limit
        self._on_limit = on_limit
        self.read = 0
        self._counters = counters
        self._on_eof = on_eof
        self._on_error = on_error
        self._held = 0  # bytes in the pipe, read from src and not yet written to dst
        self._fds: list[int] = []
        try:
            # Our own descriptors: the loop refuses to watch one a transport owns, and closing
            # ours never closes the transports' sockets.
            self._in = self._keep(os.dup(src_fd))
            self._out = self._keep(os.dup(dst_fd))
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._r, self._w = self._keep(r), self._keep(w)
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            self._size = fcntl.fcntl(self._w, fcntl.F_GETPIPE_SZ)
        except OSError:
            self._close_fds()
            raise
        self._active = True
        loop.add_reader(self._in, self._move)

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def _move(self) -> None:
        counters = self._counters
        for _ in range(ROUNDS):
            want = self._size if self._limit is None else min(self._size, self._limit - self.read)
            # Only an empty pipe is read into: then EAGAIN can only mean the socket is empty
            # (a pipe holding partial pages can be full below its byte capacity).
            try:
                n = os.splice(self._in, self._w, want, flags=_FLAGS)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(exc)
                return
            if n == 0:
                self._finish()
                return
            counters[0] += n
            self.read += n
            self._held = n
            if not self._flush():
                if not self._active:
                    return  # failed
                # The destination is full: stop reading until it drains (TCP backpressure).
                self._loop.remove_reader(self._in)
                self._loop.add_writer(self._out, self._writable)
                return
            if self._limit is not None and self.read >= self._limit:
                self.stop()
                if self._on_limit is not None:
                    self._on_limit()
                return
            if n < want:
                return  # the socket is drained; the loop wakes us when more arrives

    def _flush(self) -> bool:
        """Write what the pipe holds; True when it is empty."""
        while self._held:
            try:
                m = os.splice(self._r, self._out, self._held, flags=_FLAGS)
            except BlockingIOError:
                return False
            except OSError as exc:
                self._fail(exc)
                return False
            self._held -= m
            self._counters[1] += m
            self._counters[2] += m
        return True

    def _writable(self) -> None:
        if not self._flush():
            return
        if not self._active:
            return  # failed while flushing
        self._loop.remove_writer(self._out)
        if self._limit is not None and self.read >= self._limit:
            self.stop()
            if self._on_limit is not None:
                self._on_limit()
            return
        self._loop.add_reader(self._in, self._move)
        self._move()

    def _finish(self) -> None:
        self.stop()
        self._on_eof()

    def _fail(self, exc: OSError) -> None:
        self.stop()
        self._on_error(exc)

    def stop(self) -> bytes:
        """Stop moving bytes and give back those still in the pipe (read from the source, not yet
        written): the caller writes them before anything else. Idempotent."""
        if not self._active:
            return b""
        self._active = False
        self._loop.remove_reader(self._in)
        self._loop.remove_writer(self._out)
        left = bytearray()
        while self._held:
            try:
                chunk = os.read(self._r, self._held)
            except OSError:
                break
            if not chunk:
                break
            left += chunk
            self._held -= len(chunk)
        self._close_fds()
        return bytes(left)

    def _close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
