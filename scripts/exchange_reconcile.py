#!/usr/bin/env python3
"""Independent reconciliation of an exchange run against PostgreSQL (issues 16 and 24).

Reads the run's load history (what the client was told) and PostgreSQL directly (what the
exchange holds), with no chaoslab code and no exchange code: a second opinion on chaoslab's own
checker and on the exchange's matching.

    scripts/exchange_reconcile.py [RUN_DIR] [--dsn postgresql://trader:trader@127.0.0.1:5433/exchange]
                                  [--settle 5]

Prints one JSON object. With RUN_DIR: acknowledged (distinct client_order_ids the client got a
200/201 for), read_back (of those, stored), lost (acknowledged, not stored; or stored under
another order_id than the one acknowledged), duplicates (a client_order_id stored more than
once), wrong_retries (a retry answered with an order_id other than the original). Always, over
the whole database: over_traded, orphan_fills, and the fills the order log implies:
missing_fills (a trade that replaying `orders` by seq under price-time priority produces, absent
from `trades`: a fill a client was told about that consumers of `trades` never see),
phantom_fills (a stored trade no replay produces) and wrong_fills (same trade id, other
orders, price or quantity). Fills of orders younger than --settle seconds are not judged:
trades follow their orders within a batch or two. Exit 1 when any count but acknowledged,
read_back and stored_for_run is non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import sys
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg

OVER_TRADED = """
SELECT o.order_id FROM orders o JOIN trades t
  ON t.buy_order_id = o.order_id OR t.sell_order_id = o.order_id
GROUP BY o.order_id, o.quantity HAVING sum(t.quantity) > o.quantity
"""
ORPHAN_FILLS = """
SELECT t.trade_id FROM trades t
WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = t.buy_order_id)
   OR NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = t.sell_order_id)
"""
# (trade_id, buy_order_id, sell_order_id, price, quantity)
Fill = tuple[str, str, str, Decimal, Decimal]


def read_history(run_dir: Path) -> tuple[str, dict[str, str | None], int]:
    """(load token, client_order_id -> acknowledged order_id or None, wrong retries)."""
    token = ""
    acked: dict[str, str | None] = {}
    wrong = 0
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "load":
            token = rec["run"]
        elif "answered id" in str(rec.get("error") or ""):
            wrong += 1  # a retry given a new order_id (load.http.retry_acked)
        elif rec.get("ack"):
            acked.setdefault(rec["key"], rec.get("ack_id"))
    return token, acked, wrong


@dataclass
class _Resting:
    order_id: str
    remaining: Decimal


def replay(orders: list[asyncpg.Record]) -> dict[str, tuple[int, Fill]]:
    """trade_id -> (taker seq, fill): the order log (sorted by seq) matched under price-time
    priority, written from the rule, not from the exchange's engine: per symbol a heap of bids
    (highest price, then oldest) and one of asks (lowest, then oldest); a taker trades at the
    maker's price while it crosses; a LIMIT remainder rests, a MARKET remainder is dropped.
    Trade ids are the exchange's documented `<taker order_id>:<n>`."""
    bids: dict[str, list[tuple[Decimal, int, _Resting]]] = {}
    asks: dict[str, list[tuple[Decimal, int, _Resting]]] = {}
    fills: dict[str, tuple[int, Fill]] = {}
    for o in orders:
        buying = o["side"] == "BUY"
        opposite = (asks if buying else bids).setdefault(o["symbol"], [])
        left = Decimal(o["quantity"])
        limit = None if o["price"] is None else Decimal(o["price"])
        n = 0
        while left > 0 and opposite:
            key, _, maker = opposite[0]
            price = key if buying else -key
            if limit is not None and (price > limit if buying else price < limit):
                break
            qty = min(left, maker.remaining)
            buy, sell = (o["order_id"], maker.order_id) if buying else (maker.order_id, o["order_id"])
            trade_id = f"{o['order_id']}:{n}"
            fills[trade_id] = (o["seq"], (trade_id, buy, sell, price, qty))
            n += 1
            left -= qty
            maker.remaining -= qty
            if maker.remaining == 0:
                heapq.heappop(opposite)
        if left > 0 and limit is not None:
            own = (bids if buying else asks).setdefault(o["symbol"], [])
            heapq.heappush(own, (-limit if buying else limit, o["seq"], _Resting(o["order_id"], left)))
    return fills


async def read_db(dsn: str, token: str | None, settle: float) -> dict[str, object]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        # One snapshot for the log and the trades, so a batch committed between two reads
        # cannot look like missing fills.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = [] if token is None else await conn.fetch(
                "SELECT client_order_id, order_id FROM orders WHERE client_order_id LIKE $1",
                f"{token}-%",
            )
            over = len(await conn.fetch(OVER_TRADED))
            orphans = len(await conn.fetch(ORPHAN_FILLS))
            now_us = int(await conn.fetchval("SELECT extract(epoch FROM now()) * 1000000"))
            log = await conn.fetch(
                "SELECT order_id, seq, symbol, side, quantity, price FROM orders ORDER BY seq"
            )
            trades = await conn.fetch(
                "SELECT trade_id, seq, buy_order_id, sell_order_id, price, quantity FROM trades"
            )
    finally:
        await conn.close()
    # seq is the exchange's microsecond clock at the order's arrival (docs/exchange.md).
    cut = now_us - int(settle * 1_000_000)
    expected = {k: fill for k, (seq, fill) in replay(list(log)).items() if seq <= cut}
    stored = {
        t["trade_id"]: (t["trade_id"], t["buy_order_id"], t["sell_order_id"], t["price"], t["quantity"])
        for t in trades if t["seq"] <= cut
    }
    missing = sorted(set(expected) - set(stored))
    return {
        "rows": list(rows), "over_traded": over, "orphan_fills": orphans,
        "fills_judged": len(expected), "missing_fills": len(missing), "missing_examples": missing[:5],
        "phantom_fills": len(set(stored) - set(expected)),
        "wrong_fills": sum(1 for k in set(stored) & set(expected) if stored[k] != expected[k]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--dsn", default="postgresql://trader:trader@127.0.0.1:5433/exchange")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds: fills of orders younger than this are not judged")
    ns = parser.parse_args()
    report: dict[str, object] = {}
    token: str | None = None
    acked: dict[str, str | None] = {}
    wrong = 0
    if ns.run_dir is not None:
        token, acked, wrong = read_history(ns.run_dir)
    db = asyncio.run(read_db(ns.dsn, token, ns.settle))
    rows = db.pop("rows")
    assert isinstance(rows, list)
    if ns.run_dir is not None:
        stored = Counter(r["client_order_id"] for r in rows)
        stored_id = {r["client_order_id"]: r["order_id"] for r in rows}
        lost = [k for k, oid in acked.items()
                if k not in stored_id or (oid is not None and stored_id[k] != oid)]
        report = {
            "run_dir": str(ns.run_dir), "run": token, "acknowledged": len(acked),
            "read_back": sum(1 for k in acked if k in stored_id), "lost": len(lost),
            "lost_examples": lost[:5], "duplicates": sum(1 for n in stored.values() if n > 1),
            "stored_for_run": len(rows), "wrong_retries": wrong,
        }
    report |= db
    print(json.dumps(report))
    bad = ("lost", "duplicates", "wrong_retries", "over_traded", "orphan_fills",
           "missing_fills", "phantom_fills", "wrong_fills")
    return 1 if any(report.get(k) for k in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
