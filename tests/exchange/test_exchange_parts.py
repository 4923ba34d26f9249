"""The spool's crash rules and the circuit breaker's state machine, in isolation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from chaoslab_exchange.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from chaoslab_exchange.spool import Spool


def records(*ids: str) -> list[dict[str, object]]:
    return [{"order_id": i, "seq": n} for n, i in enumerate(ids)]


def test_spool_replays_from_its_offset_and_truncates_when_drained(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(records("a", "b", "c"))
    got, end = spool.read_pending(limit=2)
    assert [r["order_id"] for r in got] == ["a", "b"]
    spool.advance(end, len(got))
    reopened = Spool(tmp_path)  # as after a crash: the offset survived
    reopened.open()
    assert [r["order_id"] for r in reopened.pending()] == ["c"] and reopened.depth == 1
    got, end = reopened.read_pending()
    reopened.advance(end, len(got))
    assert reopened.depth == 0 and (tmp_path / Spool.DATA).stat().st_size == 0


def test_spool_cuts_a_torn_tail_before_appending(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(records("a"))
    with (tmp_path / Spool.DATA).open("ab") as f:
        f.write(b'{"order_id":"tor')  # a write whose fsync never returned
    again = Spool(tmp_path)
    again.open()
    again.append(records("b"))
    assert [r["order_id"] for r in again.pending()] == ["a", "b"]


def test_spool_offset_past_the_end_means_it_was_truncated(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    (tmp_path / Spool.OFFSET).write_text("999")  # crash between truncate and offset reset
    again = Spool(tmp_path)
    again.open()
    again.append(records("x"))
    assert [r["order_id"] for r in again.pending()] == ["x"]


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state through a call: it changes with time, which mypy cannot see."""
    return breaker.state


def test_breaker_opens_half_opens_with_one_trial_and_closes() -> None:
    breaker = CircuitBreaker("db", failure_threshold=2, reset_timeout=0.2)

    async def fail() -> None:
        raise ConnectionError("down")

    async def slow_ok() -> str:
        await asyncio.sleep(0.05)
        return "ok"

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await breaker.call(fail)
        assert breaker.state is BreakerState.OPEN and breaker.opened_count == 1
        with pytest.raises(CircuitOpenError):
            await breaker.call(slow_ok)
        time.sleep(0.25)
        assert state(breaker) is BreakerState.HALF_OPEN
        trial = asyncio.create_task(breaker.call(slow_ok))
        await asyncio.sleep(0)
        with pytest.raises(CircuitOpenError):  # only one trial at a time
            await breaker.call(slow_ok)
        assert await trial == "ok"
        assert state(breaker) is BreakerState.CLOSED

    asyncio.run(scenario())
