#!/usr/bin/env python3
"""Independent reconciliation of a pipeline run against PostgreSQL (issue 18).

Reads the run's load history (what the client was told) and PostgreSQL directly (what the
consumer stored or dead-lettered), with no chaoslab code: a second opinion on chaoslab's checker.

    scripts/pipeline_reconcile.py RUN_DIR [--dsn postgresql://pipeline:pipeline@127.0.0.1:5434/pipeline]

Prints one JSON object: acknowledged (ids the gateway answered 201 for), in_events and
in_dead_letters (of those), lost (acknowledged, in neither table), placed_twice (in both tables, or
twice in one), unacknowledged_stored (of this run's ids the client was not told were stored:
timeouts and 5xx that went through after all). Exit 1 when lost or placed_twice is non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import asyncpg


def read_history(run_dir: Path) -> tuple[str, set[str]]:
    """(load token, acknowledged ids)."""
    token, acked = "", set()
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "load":
            token = rec["run"]
        elif rec.get("ack"):
            acked.add(str(rec.get("ack_id") or rec["key"]))
    return token, acked


async def read_db(dsn: str, token: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT id, 'events' AS place FROM events WHERE id LIKE $1 UNION ALL "
            "SELECT id, 'dead_letters' FROM dead_letters WHERE id LIKE $1", f"{token}-%")
    finally:
        await conn.close()
    return [(r["id"], r["place"]) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--dsn", default="postgresql://pipeline:pipeline@127.0.0.1:5434/pipeline")
    ns = parser.parse_args()
    token, acked = read_history(ns.run_dir)
    rows = asyncio.run(read_db(ns.dsn, token))
    places = Counter(i for i, _ in rows)
    report = {
        "run_dir": str(ns.run_dir), "run": token, "acknowledged": len(acked),
        "in_events": sum(1 for i, p in rows if p == "events" and i in acked),
        "in_dead_letters": sum(1 for i, p in rows if p == "dead_letters" and i in acked),
        "lost": sorted(acked - set(places)),
        "placed_twice": sorted(i for i, n in places.items() if n > 1),
        "unacknowledged_stored": len(set(places) - acked),
    }
    print(json.dumps({k: (len(v) if isinstance(v, list) else v) for k, v in report.items()}))
    for key in ("lost", "placed_twice"):
        if report[key]:
            print(f"{key}: {report[key][:20]}", file=sys.stderr)
    return 1 if report["lost"] or report["placed_twice"] else 0


if __name__ == "__main__":
    sys.exit(main())
