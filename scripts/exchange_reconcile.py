#!/usr/bin/env python3
"""Independent reconciliation of an exchange run against PostgreSQL (issue 16).

Reads the run's load history (what the client was told) and PostgreSQL directly (what the
exchange holds), with no chaoslab code: a second opinion on chaoslab's own checker.

    scripts/exchange_reconcile.py RUN_DIR [--dsn postgresql://trader:trader@127.0.0.1:5433/exchange]

Prints one JSON object: acknowledged (distinct client_order_ids the client got a 200/201 for),
read_back (of those, stored), lost (acknowledged, not stored; or stored under another order_id
than the one acknowledged), duplicates (a client_order_id stored more than once), wrong_retries
(a retry answered with an order_id other than the original), over_traded and orphan_fills
(whole database). Exit 1 when any of lost, duplicates, wrong_retries, over_traded,
orphan_fills is non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
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


async def read_db(dsn: str, token: str) -> tuple[list[asyncpg.Record], int, int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT client_order_id, order_id FROM orders WHERE client_order_id LIKE $1", f"{token}-%"
        )
        over = len(await conn.fetch(OVER_TRADED))
        orphans = len(await conn.fetch(ORPHAN_FILLS))
    finally:
        await conn.close()
    return list(rows), over, orphans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--dsn", default="postgresql://trader:trader@127.0.0.1:5433/exchange")
    ns = parser.parse_args()
    token, acked, wrong = read_history(ns.run_dir)
    rows, over, orphans = asyncio.run(read_db(ns.dsn, token))
    stored = Counter(r["client_order_id"] for r in rows)
    stored_id = {r["client_order_id"]: r["order_id"] for r in rows}
    lost = [k for k, oid in acked.items() if k not in stored_id or (oid is not None and stored_id[k] != oid)]
    report = {
        "run_dir": str(ns.run_dir), "run": token, "acknowledged": len(acked),
        "read_back": sum(1 for k in acked if k in stored_id), "lost": len(lost),
        "lost_examples": lost[:5], "duplicates": sum(1 for n in stored.values() if n > 1),
        "stored_for_run": len(rows), "wrong_retries": wrong, "over_traded": over, "orphan_fills": orphans,
    }
    print(json.dumps(report))
    return 1 if lost or report["duplicates"] or wrong or over or orphans else 0


if __name__ == "__main__":
    sys.exit(main())
