"""Trades follow the order log without a restart (issue 24, item 3).

PostgreSQL away, the API SIGKILLed while fills of spooled orders were only in its memory,
restarted from its local index (`book: local`), orders flowing, PostgreSQL back: once the
spool has drained, every fill a client was told about must be in `trades`, and the
independent reconciliation (scripts/exchange_reconcile.py, its own price-time replay of
`orders`) must find nothing missing. Before the fix those fills reached `trades` only at the
API's next start, when it rebuilt the table from the log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from exchange_load import LoadResult, OrderLoad, spool_drained, wait_for
from exchange_servers import REPO, MakeApi, PgServer


def _queued_fills(result: LoadResult) -> int:
    return sum(1 for durability, _ in list(result.fills.values()) if durability == "accepted_queued")


def _fills(load: OrderLoad, what: str, n: int = 20, queued: bool = False) -> None:
    """Wait (on the answers, not the clock) until ``n`` more fills were told to clients."""
    count = (lambda: _queued_fills(load.result)) if queued else (lambda: len(load.result.fills))
    target = count() + n
    wait_for(lambda: count() >= target, 60, lambda: f"{n} more fills {what} ({load.result})")


def _missing(pg: PgServer, db: str, result: LoadResult) -> list[str]:
    stored = {r["trade_id"] for r in pg.query(db, "SELECT trade_id FROM trades")}
    return sorted(set(result.fills) - stored)


def test_fills_acknowledged_without_postgres_reach_trades_without_a_restart(
    api_factory: MakeApi, pg_up: PgServer
) -> None:
    api, db = api_factory()
    url = [api.url]
    with OrderLoad(url, prefix="fills") as load:
        _fills(load, "committed before the fault")
        pg_up.kill()
        # Fills the API knows only in memory (their trades wait for PostgreSQL), then the crash.
        _fills(load, "acknowledged from the spool", queued=True)
        api.kill()
        api.start()  # PostgreSQL still down: the book comes from the local index and the spool
        assert api.health()["book"] == "local"
        _fills(load, "after the restart")
        pg_up.start()
        wait_for(lambda: spool_drained(api), 60, "the spool to drain into PostgreSQL")
    told = load.result
    # What the issue saw: the spool drained and /health said healthy, yet the fills never came.
    wait_for(lambda: api.health()["status"] == "healthy", 30, "healthy after the recovery")
    # Waiting on the data, not a sleep: trades follow their orders within a batch or two.
    deadline = time.monotonic() + 30
    while True:
        reconcile = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "exchange_reconcile.py"), "--dsn",
             pg_up.dsn(db), "--settle", "0"],
            capture_output=True, text=True, timeout=120,
        )
        report = json.loads(reconcile.stdout)
        if reconcile.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    missing = _missing(pg_up, db, told)
    assert reconcile.returncode == 0 and not missing, (
        f"{len(missing)} of {len(told.fills)} fills told to clients are not in trades, e.g."
        f" {missing[:3]}; reconciliation: {report}; health: {api.health()}"
    )
    assert report["fills_judged"] >= len(told.fills)
    assert api.health()["trades"] == "current"
