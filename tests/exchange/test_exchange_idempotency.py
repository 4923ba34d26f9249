"""Issue 16's combined fault against real PostgreSQL: PostgreSQL unreachable with orders in the
spool, the API SIGKILLed and restarted while it is still away, then clients retry orders that
were committed before the fault. Every retry must name the original order, and PostgreSQL must
end with every acknowledged order stored once and no order traded beyond its quantity."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
from exchange_servers import MakeApi, PgServer

OVER_TRADED = """
SELECT o.order_id, o.quantity, coalesce(sum(t.quantity), 0) AS traded
FROM orders o LEFT JOIN trades t ON t.buy_order_id = o.order_id OR t.sell_order_id = o.order_id
GROUP BY o.order_id, o.quantity HAVING coalesce(sum(t.quantity), 0) > o.quantity
"""
ORPHAN_TRADES = """
SELECT t.trade_id FROM trades t
WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = t.buy_order_id)
   OR NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = t.sell_order_id)
"""


def _body(i: int, prefix: str) -> dict[str, Any]:
    # Buys and sells around one price: most orders trade, some rest in the book.
    side = "BUY" if i % 2 else "SELL"
    return {
        "symbol": "BTCUSD",
        "side": side,
        "type": "LIMIT",
        "quantity": 1 + i % 3,
        "price": 100 + (i % 5) - 2,
        "client_order_id": f"{prefix}-{i}",
    }


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _start_seconds(log: str) -> float:
    """How long the last start took, from the API's own log: its first line ("starting") to
    "rebuilt the book", so the interpreter's imports, which a busy machine stretches to seconds,
    do not count against a bound on the wait for PostgreSQL."""
    stamps: dict[str, datetime] = {}
    for line in log.splitlines():
        for key in ("starting:", "rebuilt the book"):
            if key in line:
                stamps[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return (stamps["rebuilt the book"] - stamps["starting:"]).total_seconds()


def _send(c: httpx.Client, bodies: list[dict[str, Any]]) -> tuple[dict[str, str], float]:
    """client_order_id -> order_id of each acknowledgement, and the slowest one (s)."""
    acked: dict[str, str] = {}
    slowest = 0.0
    for b in bodies:
        t0 = time.monotonic()
        r = c.post("/orders", json=b)
        slowest = max(slowest, time.monotonic() - t0)
        assert r.status_code in (200, 201), r.text
        acked[b["client_order_id"]] = r.json()["order_id"]
    return acked, slowest


def test_retries_after_a_restart_without_postgres_name_the_original(
    api_factory: MakeApi, pg_up: PgServer
) -> None:
    # The default --startup-timeout (5 s) and --db-timeout (2 s): the bounds the docs promise.
    api, db = api_factory("--startup-timeout", "5")
    before = [_body(i, "pre") for i in range(60)]
    during = [_body(i, "dur") for i in range(120)]
    with httpx.Client(base_url=api.url, timeout=30) as c:
        committed, _ = _send(c, before)
    assert len(pg_up.query(db, "SELECT 1 FROM orders")) == 60

    pg_up.kill()
    with httpx.Client(base_url=api.url, timeout=30) as c:
        spooled, slowest_down = _send(c, during)
    assert api.health()["spool_depth"] > 0

    api.kill()  # SIGKILL while PostgreSQL is away
    api.start()
    started_in = _start_seconds(api.log_tail(100_000))
    health = api.health()
    assert health["database"] == "down", health

    with httpx.Client(base_url=api.url, timeout=30) as c:
        retried: dict[str, tuple[int, str]] = {}
        for b in before + during:
            r = c.post("/orders", json=b)
            retried[b["client_order_id"]] = (r.status_code, r.json().get("order_id", r.text))
        fresh, slowest_restarted = _send(c, [_body(i, "post") for i in range(40)])

    wrong = {k: v for k, v in retried.items() if v != (200, {**committed, **spooled}[k])}
    assert not wrong, (
        f"{len(wrong)} retries did not name the original, e.g. {list(wrong.items())[:3]}"
    )
    # Generous bounds (two busy cores): the bug took 9-12 s to start and 8.2 s to acknowledge.
    assert started_in < 5 + 3, started_in
    assert slowest_down < 2 * 2 + 2, slowest_down
    assert slowest_restarted < 2 * 2 + 2, slowest_restarted

    pg_up.start()
    _wait(
        lambda: api.health()["database"] == "up" and api.health()["spool_depth"] == 0,
        60,
        "the spool to drain",
    )
    api.kill()
    api.start()  # with PostgreSQL: the rebuild reconciles derived trades
    _wait(lambda: api.health()["book"] == "complete", 30, "a rebuild from PostgreSQL")

    rows = pg_up.query(db, "SELECT order_id, client_order_id FROM orders")
    stored = {r["order_id"] for r in rows}
    acked_ids = set(committed.values()) | set(spooled.values()) | set(fresh.values())
    assert not acked_ids - stored, f"{len(acked_ids - stored)} acknowledged orders not stored"
    assert len(rows) == 60 + 120 + 40, len(rows)
    assert pg_up.query(db, OVER_TRADED) == []
    assert pg_up.query(db, ORPHAN_TRADES) == []
