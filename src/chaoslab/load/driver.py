"""What one operation does, whatever the system: the driver protocol and its result.

Drivers are callback-based: ``submit`` starts an operation and returns at once; the driver
calls ``done(result)`` when the outcome is known, or never if the generator cancels it first
(timeout or end of run). At thousands of operations a second, a task and a timer per
operation cost more than the request itself (bench/loadgen.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class Result:
    ok: bool
    status: int | None = None
    ack: bool = False
    ack_id: str | None = None
    refused: bool = False  # the system said no: the write must not exist afterwards
    error: str | None = None


Done = Callable[[Result], None]
Cancel = Callable[[], Any]


class Driver(Protocol):
    async def start(self) -> None: ...

    def submit(self, seq: int, key: str, done: Done) -> Cancel: ...

    async def close(self) -> None: ...


def submit_coroutine(coro: Coroutine[Any, Any, Result], done: Done) -> Cancel:
    """Run an async operation as a task; ``done`` gets its result unless it is cancelled."""
    task = asyncio.ensure_future(coro)

    def finished(t: asyncio.Future[Result]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        done(t.result() if exc is None else Result(False, error=f"{type(exc).__name__}: {exc}"))

    task.add_done_callback(finished)
    return task.cancel
