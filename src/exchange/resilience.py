"""How every dependency call is made: a timeout per attempt, jittered exponential
retries (tenacity) for transient errors, all behind the dependency's circuit breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from exchange.breaker import CircuitBreaker, CircuitOpenError

T = TypeVar("T")


class DependencyError(Exception):
    """A dependency (PostgreSQL, Redis) could not serve the call in time."""


async def call_dependency(
    breaker: CircuitBreaker,
    fn: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    attempts: int = 2,
    backoff: float = 0.02,
) -> T:
    async def attempt() -> T:
        async with asyncio.timeout(timeout):
            return await fn()

    try:
        async for trial in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_random_exponential(multiplier=backoff, max=backoff * 10),
            # An open breaker is a decision, not a transient error: do not retry it.
            retry=retry_if_not_exception_type(CircuitOpenError),
            reraise=True,
        ):
            with trial:
                return await breaker.call(attempt)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        raise DependencyError(f"{breaker.name}: {type(e).__name__}: {e}") from e
    raise AssertionError("unreachable")  # pragma: no cover
