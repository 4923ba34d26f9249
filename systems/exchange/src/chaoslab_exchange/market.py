"""Market simulator: geometric Brownian motion prices, published to Redis.

Every tick (100 ms by default) each symbol's price moves by
``S *= exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z)`` and the tick is published on the
``market:prices`` channel and stored under ``price:<symbol>`` (read by the order-flow
simulator to price its limit orders). Redis being away never stops the clock: the tick
is counted as a publish error and /health says degraded.

    python -m chaoslab_exchange.market --port 8081 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chaoslab_exchange.serve import serve

PRICES_CHANNEL = "market:prices"
SECONDS_PER_YEAR = 365 * 24 * 3600


class PriceModel:
    """GBM per symbol; mu and sigma are annualised, as quoted for real assets."""

    def __init__(self, start: dict[str, float], mu: float, sigma: float, seed: int | None = None) -> None:
        self.prices = dict(start)
        self.mu = mu
        self.sigma = sigma
        self._rng = random.Random(seed)

    def step(self, dt_seconds: float) -> dict[str, float]:
        dt = dt_seconds / SECONDS_PER_YEAR
        drift = (self.mu - self.sigma**2 / 2) * dt
        shock = self.sigma * math.sqrt(dt)
        for symbol, price in self.prices.items():
            self.prices[symbol] = price * math.exp(drift + shock * self._rng.gauss(0.0, 1.0))
        return dict(self.prices)


def parse_symbols(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        name, _, price = part.partition(":")
        try:
            value = float(price)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad symbol {part!r}: want NAME:PRICE") from None
        if not name or not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"bad symbol {part!r}: want NAME:PRICE with PRICE > 0")
        out[name] = value
    if not out:
        raise argparse.ArgumentTypeError("no symbols given")
    return out


class MarketSimulator:
    def __init__(self, model: PriceModel, redis_url: str, interval: float, timeout: float = 0.5) -> None:
        self.model = model
        self.interval = interval
        self.timeout = timeout
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self.registry = CollectorRegistry()
        self.ticks = Counter("market_ticks_total", "Price ticks generated.", registry=self.registry)
        self.published = Counter("market_ticks_published_total", "Ticks published to Redis.", registry=self.registry)
        self.errors = Counter("market_publish_errors_total", "Ticks Redis did not take.", registry=self.registry)
        self.price = Gauge("market_price", "Last price per symbol.", ["symbol"], registry=self.registry)
        self.last_publish_ok = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            prices = self.model.step(self.interval)
            self.ticks.inc()
            for symbol, price in prices.items():
                self.price.labels(symbol).set(price)
            await self._publish(prices)
            # Fixed-rate schedule: a slow publish does not stretch the tick interval.
            next_tick += self.interval
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    async def _publish(self, prices: dict[str, float]) -> None:
        message = json.dumps({"ts": time.time(), "prices": prices}, separators=(",", ":"))
        try:
            async with asyncio.timeout(self.timeout):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for symbol, price in prices.items():
                        pipe.set(f"price:{symbol}", repr(price))
                    pipe.publish(PRICES_CHANNEL, message)
                    await pipe.execute()
            self.published.inc()
            self.last_publish_ok = True
        except Exception:  # Redis away: count it and keep the clock running
            self.errors.inc()
            self.last_publish_ok = False


def create_app(sim: MarketSimulator) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(sim.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await sim.redis.aclose()

    app = FastAPI(title="Market simulator", lifespan=lifespan)

    @app.get("/health")
    async def health() -> Any:
        return JSONResponse({
            "status": "healthy" if sim.last_publish_ok else "degraded",
            "redis": "up" if sim.last_publish_ok else "down",
            "symbols": len(sim.model.prices),
        })

    @app.get("/prices")
    async def prices() -> dict[str, float]:
        return dict(sim.model.prices)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(sim.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m chaoslab_exchange.market", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=env("MARKET_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("MARKET_PORT", "8081")))
    p.add_argument("--redis-url", default=env("MARKET_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--symbols", type=parse_symbols, default=env("MARKET_SYMBOLS", "BTCUSD:50000,ETHUSD:3000"),
                   help="NAME:START_PRICE,... (default BTCUSD:50000,ETHUSD:3000)")
    p.add_argument("--interval", type=float, default=float(env("MARKET_INTERVAL", "0.1")), help="seconds per tick")
    p.add_argument("--mu", type=float, default=0.0, help="annual drift")
    p.add_argument("--sigma", type=float, default=0.8, help="annual volatility")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    if not args.interval > 0:
        p.error("--interval must be > 0")
    sim = MarketSimulator(PriceModel(args.symbols, args.mu, args.sigma, args.seed), args.redis_url, args.interval)
    return serve(create_app(sim), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
