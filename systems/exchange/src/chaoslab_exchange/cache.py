"""Redis: a read cache of order states and the event bus (pub/sub).

The request path never waits on Redis for writes: events go into a bounded in-memory
buffer that one publisher task drains with pipelines. While Redis is away the buffer
fills and, once full, new events are dropped and counted (``events_dropped_total``);
reads miss and fall back to the API's own state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import deque
from itertools import islice
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chaoslab_exchange.breaker import CircuitBreaker
from chaoslab_exchange.metrics import ApiMetrics
from chaoslab_exchange.resilience import DependencyError, call_dependency

EVENTS_CHANNEL = "exchange:events"


class Cache:
    def __init__(
        self, url: str, breaker: CircuitBreaker, metrics: ApiMetrics, timeout: float,
        buffer_max: int = 20_000, batch: int = 500,
    ) -> None:
        self.breaker = breaker
        self.metrics = metrics
        self.timeout = timeout
        self.batch = batch
        # Our own retries and timeouts decide; the client must not retry behind our back.
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )
        self._buffer: deque[tuple[str, dict[str, Any]]] = deque()
        self._buffer_max = buffer_max
        self._wakeup = asyncio.Event()
        self._stopping = False

    def publish(self, order: dict[str, Any], trades: list[dict[str, Any]]) -> None:
        """Queue the order's new state (cache + event) and its trades (events)."""
        items = [("order", order)] + [("trade", t) for t in trades]
        for item in items:
            if len(self._buffer) >= self._buffer_max:
                self.metrics.events_dropped.inc()
                continue
            self._buffer.append(item)
        self.metrics.events_buffered.set(len(self._buffer))
        self._wakeup.set()

    async def _send(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        # Three commands per batch, not per order: the client's CPU is the cost here.
        # Order states are cached without a TTL (MSET takes none); at a few hundred bytes
        # each that is fine for a simulation and keeps the write path one command.
        events = [{"type": kind, **body} for kind, body in items]
        states = {
            f"order:{body['order_id']}": json.dumps(body, separators=(",", ":"))
            for kind, body in items if kind == "order"
        }
        async with self.client.pipeline(transaction=False) as pipe:
            if states:
                pipe.mset(states)
            pipe.publish(EVENTS_CHANNEL, json.dumps(events, separators=(",", ":")))
            await pipe.execute()

    async def run(self) -> None:
        """Publisher loop; events leave the buffer only once Redis took them."""
        while not (self._stopping and not self._buffer):
            if not self._buffer:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._wakeup.wait()
                continue
            items = list(islice(self._buffer, self.batch))
            try:
                await call_dependency(self.breaker, functools.partial(self._send, items), timeout=self.timeout)
            except DependencyError:
                if self._stopping:
                    return
                await asyncio.sleep(0.2)
                continue
            for _ in items:
                self._buffer.popleft()
            self.metrics.events_buffered.set(len(self._buffer))

    async def get_order(self, order_id: str) -> dict[str, Any] | None:
        async def get() -> bytes | str | None:
            value: bytes | str | None = await self.client.get(f"order:{order_id}")
            return value

        raw = await call_dependency(self.breaker, get, timeout=self.timeout, attempts=1)
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.ping()
            return True
        except Exception:  # any failure means "not up"
            return False

    async def stop(self, flush_deadline: float = 1.0) -> None:
        self._stopping = True
        self._wakeup.set()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()
