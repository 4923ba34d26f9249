"""How every dependency call is made: a timeout per attempt, jittered exponential
retries (tenacity) for transient errors, all behind the dependency's circuit breaker.

The timeout abandons the attempt rather than waiting for its cancellation to finish: a
cancelled asyncpg query cleans up (cancel request, connection reset) against a peer whose
packets may be dropped, and waiting for that clean-up is what let a 2 s budget become 4-8 s
under a partition (docs/results.md, experiment 02). The abandoned task still gets cancelled
and finishes on its own; nobody waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from chaoslab_exchange.breaker import CircuitBreaker, CircuitOpenError

T = TypeVar("T")


class DependencyError(Exception):
    """A dependency (PostgreSQL, Redis) could not serve the call in time."""


def _forget(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned attempt's error is not news


async def abandon_after(coro: Awaitable[T], timeout: float) -> T:
    """Await ``coro`` for at most ``timeout`` seconds, however long its cancellation takes."""
    task: asyncio.Task[T] = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_forget)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_forget)
        raise TimeoutError(f"no answer within {timeout:.2f} s")
    return task.result()


async def call_dependency(
    breaker: CircuitBreaker,
    fn: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    attempts: int = 2,
    backoff: float = 0.02,
    slow_after: float | None = None,
) -> T:
    async def attempt() -> T:
        return await abandon_after(fn(), timeout)

    try:
        async for trial in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_random_exponential(multiplier=backoff, max=backoff * 10),
            # An open breaker is a decision, not a transient error: do not retry it.
            retry=retry_if_not_exception_type(CircuitOpenError),
            reraise=True,
        ):
            with trial:
                return await breaker.call(attempt, slow_after)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        raise DependencyError(f"{breaker.name}: {type(e).__name__}: {e}") from e
    raise AssertionError("unreachable")  # pragma: no cover
