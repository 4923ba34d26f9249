"""Order-flow simulator: a steady, open-model stream of realistic orders.

Order k is due at t0 + k/rate whatever happened to earlier ones (no coordinated
omission); when ``--max-inflight`` requests are already out, a due order is skipped and
counted instead of queueing. Limit prices sit around the market simulator's last price
(``price:<symbol>`` in Redis) when Redis has one, else around the symbol's start price.

    python -m chaoslab_exchange.orderflow --port 8082 --target http://127.0.0.1:8000 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chaoslab_exchange.market import parse_symbols
from chaoslab_exchange.serve import serve


class OrderGenerator:
    """Random but plausible orders: mostly limits a few ticks from the reference price."""

    def __init__(self, reference: dict[str, float], limit_ratio: float, seed: int | None) -> None:
        self.reference = dict(reference)
        self.limit_ratio = limit_ratio
        self._rng = random.Random(seed)

    def next(self) -> dict[str, Any]:
        rng = self._rng
        symbol = rng.choice(sorted(self.reference))
        side = rng.choice(("BUY", "SELL"))
        order: dict[str, Any] = {
            "symbol": symbol, "side": side, "quantity": round(rng.uniform(0.01, 2.0), 2),
            "client_order_id": f"flow-{uuid.uuid4().hex}",
        }
        if rng.random() < self.limit_ratio:
            # Buyers bid a little under the reference, sellers ask a little over, with
            # enough spread overlap that some limits cross and trade.
            offset = rng.uniform(-0.002, 0.004) * (-1 if side == "BUY" else 1)
            order |= {"type": "LIMIT", "price": round(self.reference[symbol] * (1 + offset), 2)}
        else:
            order["type"] = "MARKET"
        return order


class OrderFlow:
    def __init__(
        self, target: str, rate: float, generator: OrderGenerator, redis_url: str | None,
        timeout: float, max_inflight: int,
    ) -> None:
        self.target = target.rstrip("/")
        self.rate = rate
        self.generator = generator
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.redis: aioredis.Redis | None = None
        if redis_url:
            self.redis = aioredis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
            )
        self.inflight = 0
        self.recent: deque[tuple[float, bool]] = deque(maxlen=10_000)
        r = self.registry = CollectorRegistry()
        self.orders = Counter(
            "orderflow_orders_total", "Orders by outcome: ok, rejected (4xx), error (5xx), "
            "timeout, unreachable, skipped (too many in flight).", ["outcome"], registry=r,
        )
        self.latency = Histogram(
            "orderflow_latency_seconds", "Latency of acknowledged orders, from their due time.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r,
        )
        self.inflight_gauge = Gauge("orderflow_inflight", "Requests in flight.", registry=r)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.max_inflight, max_keepalive_connections=self.max_inflight)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            refresher = asyncio.create_task(self._refresh_prices())
            tasks: set[asyncio.Task[None]] = set()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            k = 0
            try:
                while True:
                    due = t0 + k / self.rate
                    k += 1
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if self.inflight >= self.max_inflight:
                        self.orders.labels("skipped").inc()
                        self.recent.append((time.monotonic(), False))
                        continue
                    task = asyncio.create_task(self._send(client, due))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            finally:
                refresher.cancel()
                for task in tasks:
                    task.cancel()

    async def _send(self, client: httpx.AsyncClient, due: float) -> None:
        self.inflight += 1
        self.inflight_gauge.set(self.inflight)
        outcome = "ok"
        try:
            r = await client.post(f"{self.target}/orders", json=self.generator.next())
            if r.status_code >= 500:
                outcome = "error"
            elif r.status_code >= 400:
                outcome = "rejected"
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.HTTPError:
            outcome = "unreachable"
        finally:
            self.inflight -= 1
            self.inflight_gauge.set(self.inflight)
        self.orders.labels(outcome).inc()
        self.recent.append((time.monotonic(), outcome == "ok"))
        if outcome == "ok":
            self.latency.observe(asyncio.get_running_loop().time() - due)

    async def _refresh_prices(self) -> None:
        if self.redis is None:
            return
        while True:
            for symbol in list(self.generator.reference):
                with contextlib.suppress(Exception):  # keep the last price while Redis is away
                    value = await self.redis.get(f"price:{symbol}")
                    if value is not None:
                        self.generator.reference[symbol] = float(value)
            await asyncio.sleep(1.0)

    def success_ratio(self, window: float = 5.0) -> float | None:
        since = time.monotonic() - window
        outcomes = [ok for t, ok in self.recent if t >= since]
        return sum(outcomes) / len(outcomes) if outcomes else None


def create_app(flow: OrderFlow) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(flow.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if flow.redis is not None:
            with contextlib.suppress(Exception):
                await flow.redis.aclose()

    app = FastAPI(title="Order-flow simulator", lifespan=lifespan)

    @app.get("/health")
    async def health() -> Any:
        ratio = flow.success_ratio()
        return JSONResponse({
            "status": "healthy" if ratio is None or ratio >= 0.9 else "degraded",
            "target": flow.target, "rate": flow.rate, "success_ratio_5s": ratio,
            "inflight": flow.inflight,
        })

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(flow.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m chaoslab_exchange.orderflow", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=env("ORDERFLOW_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("ORDERFLOW_PORT", "8082")))
    p.add_argument("--target", default=env("ORDERFLOW_TARGET", "http://127.0.0.1:8080"),
                   help="base URL of the trading API (or of nginx in front of it)")
    p.add_argument("--rate", type=float, default=float(env("ORDERFLOW_RATE", "50")), help="orders per second")
    p.add_argument("--redis-url", default=env("ORDERFLOW_REDIS_URL"), help="read reference prices from here")
    p.add_argument("--symbols", default=env("ORDERFLOW_SYMBOLS", "BTCUSD:50000,ETHUSD:3000"))
    p.add_argument("--limit-ratio", type=float, default=0.7, help="share of LIMIT orders")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per request")
    p.add_argument("--max-inflight", type=int, default=200)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    try:
        symbols = parse_symbols(args.symbols)
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if not args.rate > 0 or not 0 <= args.limit_ratio <= 1 or args.max_inflight < 1:
        p.error("want --rate > 0, 0 <= --limit-ratio <= 1 and --max-inflight >= 1")
    if not args.target.startswith(("http://", "https://")):
        p.error(f"--target must be an http:// URL, got {args.target!r}")
    flow = OrderFlow(
        args.target, args.rate, OrderGenerator(symbols, args.limit_ratio, args.seed),
        args.redis_url, args.timeout, args.max_inflight,
    )
    return serve(create_app(flow), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
