"""Chaos tests of the reference exchange, written with the pytest plugin in the seeds' style."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import asyncpg
import httpx
import pytest
from tests.conftest import run_until_steady

from chaoslab.testing.assertions import (
    assert_error_rate,
    assert_no_lost_writes,
    assert_recovers_within,
)

from .conftest import Exchange

ACK = {"status": [200, 201], "id": "$.client_order_id"}


def final_read(ex: Exchange) -> list[str]:
    async def read() -> list[str]:
        conn = await asyncpg.connect(ex.dsn)
        try:
            rows = await conn.fetch(
                "select client_order_id from orders where client_order_id is not null"
            )
        finally:
            await conn.close()
        return [r[0] for r in rows]

    deadline = time.monotonic() + 30
    while True:  # the spool drains into PostgreSQL after the fault; wait until it is empty
        health = httpx.get(ex.api + "/health", timeout=2).json()
        if health.get("spool_depth", 0) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return asyncio.run(read())


class HealthWatch:
    """Polls /health in the background and keeps every status seen."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self._stop = url, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen.append(httpx.get(self.url, timeout=1).json().get("status"))
            except (httpx.HTTPError, ValueError):
                self.seen.append("unreachable")
            self._stop.wait(0.1)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.chaos_database
def test_api_survives_a_brief_postgres_pause(
    chaos_stack: Exchange, chaos_load: Any, service_failure: Any
) -> None:
    load = chaos_load(
        url=chaos_stack.api + "/orders",
        method="POST",
        rate=40,
        timeout=3,
        body=chaos_stack.order(),
        ack=ACK,
    )
    time.sleep(2)
    with (
        HealthWatch(chaos_stack.api + "/health") as health,
        service_failure("postgres", mode="pause", duration=3),
    ):
        time.sleep(8)
    run_until_steady(load, within=10)
    load.stop()
    assert "degraded" in health.seen, health.seen
    assert_error_rate(load.session, "baseline", 0.05)
    assert_error_rate(load.session, "fault", 0.10)  # orders are spooled, not refused
    assert_recovers_within(load.session, 10)  # generous: 5.8 s seen with both cores busy
    assert_no_lost_writes(load.session, final_read(chaos_stack))


@pytest.mark.chaos_cache
def test_redis_outage_degrades_gracefully(
    chaos_stack: Exchange, chaos_load: Any, service_failure: Any
) -> None:
    load = chaos_load(
        url=chaos_stack.api + "/orders",
        method="POST",
        rate=40,
        timeout=3,
        body=chaos_stack.order(side="SELL", price=101),
        ack=ACK,
    )
    time.sleep(2)
    with (
        HealthWatch(chaos_stack.api + "/health") as health,
        service_failure("redis", mode="pause", duration=3),
    ):
        time.sleep(7)
    load.stop()
    assert "degraded" in health.seen and health.seen[-1] == "healthy", health.seen
    assert_error_rate(load.session, "fault", 0.02)  # Redis is off the request path
    assert_no_lost_writes(load.session, final_read(chaos_stack))


@pytest.mark.chaos_network
def test_recovery_after_a_partition_from_postgres(
    chaos_stack: Exchange, chaos_load: Any, network_partition: Any
) -> None:
    load = chaos_load(
        url=chaos_stack.api + "/orders",
        method="POST",
        rate=40,
        timeout=3,
        body=chaos_stack.order(price=99),
        ack=ACK,
    )
    time.sleep(2)
    with network_partition({"address": "127.0.0.1", "port": chaos_stack.ports["PG"]}, duration=3):
        time.sleep(8)
    run_until_steady(load, within=10)
    load.stop()
    # Dropped packets (unlike a refused connection) make the first writes wait out the API's
    # database timeout, twice, before its breaker opens and orders go straight to the spool:
    # about 10% of the fault phase's orders time out on this machine. Bounded, not zero.
    assert_error_rate(load.session, "fault", 0.35)
    assert_recovers_within(load.session, 10)  # generous: 5.8 s seen with both cores busy
    assert_no_lost_writes(load.session, final_read(chaos_stack))
