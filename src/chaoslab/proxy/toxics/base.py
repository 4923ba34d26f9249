"""What every toxic is: its JSON attributes and one ``pipe`` coroutine, like Toxiproxy's ``toxics/*.go``.

A ``Toxic`` holds the attributes a user set through the API; it is shared by every connection of
its proxy. When it becomes active on one direction of one connection (the connection opened, or
the toxic was added while the connection was live) the link gives it a ``ToxicContext``: the
per-connection state, its timers, and an ``interrupted`` event that fires when the toxic is
removed so a sleeping toxic hands its data on instead of dropping it.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ...registry import type_arguments
from . import _timerfd

Emit = Callable[[bytes, float], Awaitable[None]]
"""Pass ``data`` (which arrived at ``time.monotonic()`` ``t``) to the next toxic of the chain."""

PRECISE_MARGIN = 0.0015
"""How long before a precise deadline the coarse timer hands over to polling (seconds)."""

MAX_MS = 10**9
"""Upper bound of every time attribute (about 11 days): keeps timers inside what the loop accepts."""


def millis(**kw: Any) -> Any:
    return Field(0, ge=0, le=MAX_MS, strict=True, json_schema_extra={"unit": "ms"}, **kw)


UNITS = ("ms", "us", "bytes", "share")
"""``json_schema_extra={"unit": ...}`` of an attribute: what a user writes for it (``ms`` and ``us``
are durations such as ``250ms``, ``bytes`` a size such as ``1MB``); the ``network.*`` faults are
generated from it."""


class ToxicAttributes(BaseModel):
    """Attributes of a toxic. Unknown keys are ignored, as Toxiproxy's JSON decoding does.

    Built on first use (``defer_build``): the ``network.*`` faults import every toxic, and a run
    that uses none should not pay for building their models at start-up."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


Attributes = ToxicAttributes

A = TypeVar("A", bound=ToxicAttributes)
"""A toxic's attribute model: ``class Latency(Toxic[LatencyAttributes])`` makes ``self.attributes``
a ``LatencyAttributes``."""


class LinkControl(Protocol):
    """What a toxic may do to the connection it runs on."""

    def close(self) -> None:
        """Close both sides of the connection gracefully (data already passed is flushed)."""

    def reset(self) -> None:
        """Close both sides with a TCP RST (SO_LINGER 0)."""


class ToxicContext:
    """One toxic active on one direction of one connection."""

    def __init__(self, toxic: Toxic[Any], link: LinkControl, direction: str = "downstream") -> None:
        self.toxic = toxic
        self.link = link
        self.direction = direction
        """``upstream`` (client to server) or ``downstream``: what the HTTP toxics parse depends on it."""
        self.stopped = False
        self.state: dict[str, Any] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._waiters: set[asyncio.Future[bool]] = set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the toxic is removed first; True when the sleep ran to its end.

        A bare future and a loop timer, not ``wait_for``: no task per chunk, and a removed
        toxic wakes every sleeper at once so buffered data moves on without delay.
        """
        if self.stopped:
            return False
        if seconds <= 0:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        handle = loop.call_later(seconds, _resolve, fut, True)
        self._waiters.add(fut)
        try:
            return await fut
        finally:
            handle.cancel()
            self._waiters.discard(fut)

    async def sleep_until(self, deadline: float, *, precise: bool = False) -> bool:
        """Sleep until ``time.monotonic()`` reaches ``deadline``.

        ``precise``: the loop's timers have millisecond granularity (libuv), so the wait is
        woken by a timerfd at the deadline (``_timerfd.py``); where there is none, it is ended
        by yielding to the loop until the deadline: sub-millisecond error for ~1 ms of polling.
        """
        if not precise:
            return await self.sleep(deadline - time.monotonic())
        if self.stopped:
            return False
        if deadline <= time.monotonic():
            return True
        loop = asyncio.get_running_loop()
        timer = _timerfd.for_loop(loop)
        if timer is not None:
            fut: asyncio.Future[bool] = loop.create_future()
            timer.at(deadline, fut)
            self._waiters.add(fut)
            try:
                return await fut
            finally:
                self._waiters.discard(fut)
        coarse = deadline - time.monotonic() - PRECISE_MARGIN
        if coarse > 0 and not await self.sleep(coarse):
            return False
        while time.monotonic() < deadline:
            if self.stopped:
                return False
            await asyncio.sleep(0)
        return not self.stopped

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
        """A timer that dies with the context (toxic removed or connection closed)."""
        if self.stopped:
            return None
        handle = asyncio.get_running_loop().call_later(seconds, callback)
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(handle)
        return handle

    def stop(self) -> None:
        self.stopped = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for fut in list(self._waiters):
            _resolve(fut, False)


def _resolve(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class Toxic(Generic[A]):
    """Base class: a toxic with no effect. Subclasses set ``type``, name their attribute model as
    the generic argument (``Toxic[LatencyAttributes]``) and override hooks."""

    Attributes: ClassVar[builtins.type[ToxicAttributes]] = ToxicAttributes
    """The model ``A`` itself, taken from the class statement when the class is defined: validates
    the attributes the API receives. (A ClassVar cannot name a type variable.)"""
    type: ClassVar[str]
    streams: ClassVar[tuple[str, ...]] = ("upstream", "downstream")
    """The directions the toxic can act on (``http_status`` writes responses: downstream only)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        args = type_arguments(cls)
        if args:
            cls.Attributes = args[0]

    def __init__(self, attributes: A) -> None:
        self.attributes: A = attributes

    def start(self, ctx: ToxicContext) -> None:
        """The toxic became active on a link (connection start, or toxic added to a live one)."""

    async def pipe(self, ctx: ToxicContext, data: bytes, t: float, emit: Emit) -> None:
        """Handle one chunk that arrived at ``time.monotonic()`` ``t``. Default: pass it on."""
        await emit(data, t)

    def removed(self, ctx: ToxicContext) -> None:
        """The toxic was removed through the API while active on this link (Toxiproxy's
        ``Cleanup``); not called when the connection ends or the toxic is updated."""

    def passes_unseen(self, ctx: ToxicContext) -> int:
        """How many of the next bytes this toxic lets pass without seeing them (they are spliced
        in the kernel, then counted with ``passed_unseen``). 0, the default: it must see every
        byte. A toxic that only counts (``limit_data``) answers what it still lets through."""
        return 0

    def passed_unseen(self, ctx: ToxicContext, n: int) -> None:
        """``n`` bytes went by in the kernel, within what ``passes_unseen`` allowed."""

    async def before_close(self, ctx: ToxicContext) -> None:
        """The source side closed; runs before the close is passed on (slow_close waits here)."""
