"""Market and order-flow simulators as real processes against real Redis and the API."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from exchange_load import wait_for
from exchange_servers import EXCHANGE_ENV, REPO, MakeApi, Proc, RedisServer, free_port

from chaoslab_exchange.market import SECONDS_PER_YEAR, PriceModel


def test_gbm_log_returns_have_the_asked_volatility() -> None:
    model = PriceModel({"X": 100.0}, mu=0.0, sigma=0.8, seed=7)
    prices = [100.0] + [model.step(0.1)["X"] for _ in range(20_000)]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    expected = 0.8 * math.sqrt(0.1 / SECONDS_PER_YEAR)
    assert all(p > 0 for p in prices)
    assert abs(statistics.pstdev(returns) / expected - 1) < 0.05
    again = PriceModel({"X": 100.0}, mu=0.0, sigma=0.8, seed=7)
    assert again.step(0.1) == PriceModel({"X": 100.0}, 0.0, 0.8, seed=7).step(0.1)


class Sim(Proc):
    def __init__(self, base: Path, module: str, *args: str) -> None:
        self.base = base
        self.port = free_port()
        self._spawn(
            [sys.executable, "-m", module, "--port", str(self.port), *args],
            base / f"{module}.log",
            cwd=str(REPO),
            env=EXCHANGE_ENV,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"{module} did not start: {(base / f'{module}.log').read_text()[-2000:]}"
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)


def test_market_simulator_publishes_ticks_every_100ms(
    workdir: Path, redis_server: RedisServer
) -> None:
    async def listen() -> list[dict[str, object]]:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            async with client.pubsub() as ps:
                await ps.subscribe("market:prices")
                got: list[dict[str, object]] = []
                deadline = time.monotonic() + 10
                while len(got) < 15 and time.monotonic() < deadline:
                    msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        got.append(json.loads(msg["data"]))
                return got
        finally:
            await client.aclose()

    sim = Sim(
        workdir, "chaoslab_exchange.market", "--redis-url", redis_server.url, "--symbols", "BTCUSD:50000"
    )
    try:
        ticks = asyncio.run(listen())
        assert len(ticks) == 15
        span = float(ticks[-1]["ts"]) - float(ticks[0]["ts"])  # type: ignore[arg-type]
        assert 0.07 < span / 14 < 0.3  # about 100 ms apart, with room for a busy machine
        wait_for(lambda: sim.get("/health").json()["status"] == "healthy", 30, "healthy market")
        assert "market_ticks_total" in sim.get("/metrics").text
        price = asyncio.run(_get(redis_server.url, "price:BTCUSD"))
        assert price is not None and float(price) > 0
        redis_server.kill()
        wait_for(lambda: sim.get("/health").json()["status"] == "degraded", 30, "degraded")
        assert sim.get("/health").json()["redis"] == "down"
    finally:
        sim.kill()


async def _get(url: str, key: str) -> bytes | str | None:
    client = aioredis.Redis.from_url(url)
    try:
        value: bytes | str | None = await client.get(key)
        return value
    finally:
        await client.aclose()


def _outcomes(flow: Sim) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in flow.get("/metrics").text.splitlines():
        if line.startswith("orderflow_orders_total{"):
            out[line.split('outcome="')[1].split('"')[0]] += int(float(line.split()[-1]))
    return out


def test_orderflow_drives_the_api_at_its_rate(
    workdir: Path, api_factory: MakeApi, redis_server: RedisServer
) -> None:
    api, _ = api_factory()
    flow = Sim(
        workdir,
        "chaoslab_exchange.orderflow",
        "--target",
        api.url,
        "--rate",
        "40",
        "--redis-url",
        redis_server.url,
        "--seed",
        "1",
    )
    try:
        # The rate is judged on the simulator's own counters over a window that starts once it
        # sends (its start, imports included, takes seconds on a busy machine), not on a fixed
        # sleep from its spawn: every due order is counted under one outcome or another.
        wait_for(lambda: _outcomes(flow)["ok"] >= 20, 60, "the order flow to reach the API")
        t1, first = time.monotonic(), _outcomes(flow)
        wait_for(lambda: time.monotonic() - t1 >= 5.0, 30, "a 5 s window")
        t2, last = time.monotonic(), _outcomes(flow)
        due = sum(last.values()) - sum(first.values())
        ok = last["ok"] - first["ok"]
        assert 0.5 * 40 <= due / (t2 - t1) <= 1.5 * 40, (due, t2 - t1, last)  # ~40/s
        assert ok >= 0.8 * due, last
        wait_for(lambda: flow.get("/health").json()["status"] == "healthy", 30, "healthy flow")
        api_metrics = httpx.get(f"{api.url}/metrics").text
        assert "orders_acknowledged_total" in api_metrics
    finally:
        flow.kill()
