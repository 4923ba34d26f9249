"""The timerfd that wakes precise toxic waits (``chaoslab/proxy/toxics/_timerfd.py``): never early,
in deadline order, and a removed toxic's wait is released at once (not left to its deadline)."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from chaoslab.proxy.toxics import ToxicContext, _timerfd, get

T = TypeVar("T")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux-only")


def test_waits_end_at_their_deadline_never_before_and_in_order() -> None:
    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        timer = _timerfd.for_loop(loop)
        assert timer is not None
        assert _timerfd.for_loop(loop) is timer  # one per loop
        woke: list[tuple[float, float]] = []

        async def wait(deadline: float) -> None:
            fut: asyncio.Future[bool] = loop.create_future()
            timer.at(deadline, fut)
            assert await fut is True
            woke.append((deadline, time.monotonic()))

        start = time.monotonic()
        rng = random.Random(7)
        # Deadlines added out of order, some closer than the earliest armed one.
        await asyncio.gather(*(wait(start + rng.uniform(0.001, 0.030)) for _ in range(300)))
        return woke

    woke = on_uvloop(main())
    assert len(woke) == 300
    assert all(at >= deadline for deadline, at in woke)
    deadlines = [d for d, _ in woke]
    assert deadlines == sorted(deadlines)


def test_a_removed_toxic_releases_its_precise_wait_at_once() -> None:
    class Link:
        def close(self) -> None: ...

        def reset(self) -> None: ...

    async def main() -> tuple[bool, float]:
        cls = get("latency")
        assert cls is not None
        toxic = cls(cls.Attributes())
        ctx = ToxicContext(toxic, Link())
        t0 = time.monotonic()
        task = asyncio.ensure_future(ctx.sleep_until(t0 + 60, precise=True))
        await asyncio.sleep(0.01)
        ctx.stop()
        return await task, time.monotonic() - t0

    ran_out, took = on_uvloop(main())
    assert ran_out is False
    assert took < 30  # released by the removal, not by the 60 s deadline


def on_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, as the proxy does (its timers are the millisecond ones the timerfd beats)."""
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
