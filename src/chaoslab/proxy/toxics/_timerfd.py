"""Wake-ups to the microsecond for the event loop, from one Linux timerfd per loop.

The loop's own timers have millisecond granularity (libuv), so a latency toxic used to finish
each wait by polling the loop for its last 1.5 ms: accurate, but a core spinning, and under a
real-time class (``realtime.py``) a spin no other process can interrupt. A timerfd armed at the
earliest deadline (absolute ``CLOCK_MONOTONIC``, the clock of ``time.monotonic()``) wakes the
loop's poll at that deadline instead; between wake-ups the proxy sleeps.

Python 3.13 has ``os.timerfd_create``; 3.11 reaches libc through ctypes. Where neither works
``for_loop`` answers None and the caller polls as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import os
import time
import weakref

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class PreciseTimer:
    """Futures resolved (True) when ``time.monotonic()`` reaches their deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _LIBC is not None
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._fd = fd
        # No reference to the loop (the registry below holds loops weakly); the descriptor goes
        # with it.
        weakref.finalize(loop, os.close, fd)
        self._heap: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._seq = itertools.count()
        self._armed = float("inf")
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._fire)

    def at(self, deadline: float, fut: asyncio.Future[bool]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), fut))
        if deadline < self._armed:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        self._armed = deadline
        sec = int(deadline)
        self._spec.it_value.tv_sec = sec
        self._spec.it_value.tv_nsec = max(1, int((deadline - sec) * 1e9))  # 0 would disarm
        assert _LIBC is not None
        _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)

    def _fire(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)
        now = time.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            fut = heapq.heappop(heap)[2]
            if not fut.done():  # a toxic removed meanwhile resolved it already
                fut.set_result(True)
        self._armed = float("inf")
        if heap:
            self._arm(heap[0][0])


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PreciseTimer | None] = weakref.WeakKeyDictionary()


def for_loop(loop: asyncio.AbstractEventLoop) -> PreciseTimer | None:
    """The loop's timer, made on first use; None where timerfd is unavailable."""
    try:
        return _TIMERS[loop]
    except KeyError:
        pass
    timer: PreciseTimer | None = None
    if _LIBC is not None and os.environ.get("CHAOSLAB_PROXY_TIMERFD", "1") != "0":
        try:
            timer = PreciseTimer(loop)
        except (OSError, AttributeError, NotImplementedError):
            timer = None
    _TIMERS[loop] = timer
    return timer
