"""Experiment 11 (issue 16's combined fault) against the real exchange stack, short windows:
partition, API SIGKILL while partitioned, retries of acknowledged orders. Checked on what
PostgreSQL holds, read here directly, not only on chaoslab's verdict."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import asyncpg
from tests.conftest import PY, assert_held

from .conftest import EXPERIMENTS

DSN = "postgresql://trader:trader@127.0.0.1:5433/exchange"
SHORT = ["FAULT_AT=5s", "KILL_AT=10s", "FAULT_FOR=14s", "RECOVERY=15s"]


def _acked(run_dir: Path) -> dict[str, str]:
    """client_order_id -> order_id of every first acknowledgement (retries carry no ack)."""
    out: dict[str, str] = {}
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("ack") and rec.get("ack_id"):
            out[rec["key"]] = rec["ack_id"]
    return out


async def _stored(run: str) -> tuple[dict[str, str], int]:
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(
            "SELECT client_order_id, order_id FROM orders WHERE client_order_id LIKE $1", f"{run}-%"
        )
        over = await conn.fetch(
            "SELECT o.order_id FROM orders o JOIN trades t"
            " ON t.buy_order_id = o.order_id OR t.sell_order_id = o.order_id"
            " GROUP BY o.order_id, o.quantity HAVING sum(t.quantity) > o.quantity"
        )
    finally:
        await conn.close()
    return {r["client_order_id"]: r["order_id"] for r in rows}, len(over)


def test_combined_fault_keeps_every_acknowledged_order(
    exchange: Path, tmp_path: Path, state_dir: Path
) -> None:
    runs = tmp_path / "runs"
    args = [a for v in SHORT for a in ("--var", v)]
    proc = subprocess.run(
        [
            PY,
            "-m",
            "chaoslab",
            "run",
            str(EXPERIMENTS / "11-partition-api-kill-retries.yaml"),
            *args,
            "--runs-dir",
            str(runs),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ),
    )
    (run_dir,) = runs.iterdir()
    analysis = json.loads((run_dir / "summary.json").read_text())["analysis"]
    retries_wrong = [
        json.loads(line)
        for line in (run_dir / "history.jsonl").read_text().splitlines()
        if "answered id" in line
    ]
    assert retries_wrong == [], retries_wrong[:3]
    assert_held(proc, analysis)
    token = json.loads((run_dir / "history.jsonl").read_text().splitlines()[0])["run"]
    acked = _acked(run_dir)
    stored, over_traded = asyncio.run(_stored(token))
    assert len(acked) > 300
    assert {k: v for k, v in acked.items() if stored.get(k) != v} == {}
    assert over_traded == 0
