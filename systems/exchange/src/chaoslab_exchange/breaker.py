"""A small circuit breaker, one per dependency.

Written here rather than taken from purgatory/aiobreaker because /health and /metrics
must read the state synchronously at any moment, the half-open state must let exactly
one trial call through, and the whole thing is forty lines with no storage backend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Raised instead of calling a dependency whose breaker is open."""


class CircuitBreaker:
    def __init__(
        self, name: str, failure_threshold: int = 3, reset_timeout: float = 2.0,
        slow_call: float | None = None,
    ) -> None:
        self.name = name
        # A call that succeeds but takes longer than this counts as a failure: a dependency
        # that answers every write in 1.9 s of a 2 s budget is not healthy, and only an open
        # breaker makes the writer spool and /health say "degraded" (experiment 05).
        self.slow_call = slow_call
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self.opened_count = 0  # how many times it tripped: a detection signal
        self.slow_successes = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if time.monotonic() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _allow(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._trial_running = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self._opened_at is None:
                self.opened_count += 1
            self._opened_at = time.monotonic()  # a failed trial re-opens for another period

    async def call(self, fn: Callable[[], Awaitable[T]], slow_after: float | None = None) -> T:
        """``slow_after``: this call's own slow threshold (a big batch may take longer than
        ``slow_call`` on a healthy database); default ``slow_call``."""
        if not self._allow():
            raise CircuitOpenError(f"{self.name} circuit is {self.state}")
        started = time.monotonic()
        try:
            result = await fn()
        except BaseException:
            self.record_failure()
            raise
        slow = self.slow_call if slow_after is None else slow_after
        if slow is not None and time.monotonic() - started > slow:
            self.slow_successes += 1
            self.record_failure()
        else:
            self.record_success()
        return result
