"""A real Prometheus scraping the real exchange (trading API on PostgreSQL and Redis) under a
trickle of orders; the seeds' PromQL through the Prometheus probe, and the exchange dashboard's
queries returning data."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ROOT

from .conftest import Prometheus, sample

sys.path.insert(0, str(ROOT / "tests" / "exchange"))

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def exchange_api() -> Iterator[str]:
    if os.geteuid() != 0 or not (PG_BIN / "postgres").exists():
        pytest.skip("needs root (PostgreSQL runs as the postgres user) and PostgreSQL 15")
    from exchange_servers import ApiServer, PgServer, RedisServer

    base = Path(tempfile.mkdtemp(prefix="chaoslab-obs-exchange-"))
    pg, redis, api = PgServer(), RedisServer(base), None
    try:
        pg.start()
        redis.start()
        api = ApiServer(base, pg.dsn(pg.create_database()), redis.url, "--log-level", "warning")
        api.start()
        yield api.url
    finally:
        if api is not None:
            api.kill()
        redis.kill()
        pg.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def trickle(url: str, stop: threading.Event, rate: float = 30.0) -> None:
    with httpx.Client(timeout=2) as client:
        n = 0
        while not stop.is_set():
            side = "BUY" if n % 2 else "SELL"
            body: dict[str, Any] = {
                "symbol": "BTCUSD",
                "side": side,
                "type": "LIMIT",
                "quantity": 1,
                "price": 100,
            }
            try:
                client.post(f"{url}/orders", json=body)
            except httpx.HTTPError:
                pass
            n += 1
            stop.wait(1 / rate)


def test_prometheus_scrapes_the_exchange_and_the_seed_promql_works(
    exchange_api: str, prometheus: Prometheus
) -> None:
    prom = prometheus.start([exchange_api.removeprefix("http://")])
    stop = threading.Event()
    sender = threading.Thread(target=trickle, args=(exchange_api, stop), daemon=True)
    sender.start()
    try:
        prom.wait_for("sum(rate(orders_total[10s])) > 5", timeout=60)
        prom.wait_for(
            "histogram_quantile(0.95, sum by (le) (rate(order_processing_duration_seconds_bucket[1m]))) > 0"
        )
        rate = sample(
            {
                "prometheus": {"url": prom.url, "query": "sum(rate(orders_total[10s]))"},
                "expect": {"min": 5},
            }
        )[0]
        assert rate.ok and 5 <= rate.value <= 60, rate  # ~30 orders/s sent
        p95 = sample(
            {
                "prometheus": {
                    "url": prom.url,
                    "query": "histogram_quantile(0.95, sum by (le) "
                    "(rate(order_processing_duration_seconds_bucket[1m])))",
                },
                "expect": {"max": 1.0},
            }
        )[0]
        assert p95.ok and 0 < p95.value <= 1.0, p95
        failed = sample(
            {
                "prometheus": {
                    "url": prom.url,
                    "query": 'sum(rate(orders_total{status="FAILED"}[10s]))',
                    "empty": "zero",
                },
                "expect": {"max": 0},
            }
        )[0]
        assert failed.ok, failed
    finally:
        stop.set()
        sender.join(timeout=5)
    # the exchange dashboard's order panels have data
    dash = json.loads((ROOT / "examples" / "exchange" / "grafana" / "exchange.json").read_text())
    exprs = [
        t["expr"]
        for p in dash["panels"]
        for t in p["targets"]
        if "orders_total" in t["expr"] or "order_processing" in t["expr"]
    ]
    assert len(exprs) >= 4
    for expr in exprs:
        if "FAILED" not in expr:
            assert prom.query(expr), expr
