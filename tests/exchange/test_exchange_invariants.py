"""verify.invariants against real PostgreSQL: every row an invariant query returns is a
violation, counted in verify.json and judged as hypothesis key ``invariant.<name>``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from exchange_servers import PgServer

from chaoslab.experiment.names import validate_metric_name
from chaoslab.experiment.workload import VerifySpec
from chaoslab.runner.finalread import final_read

OVER_TRADED = (
    "SELECT o.order_id FROM orders o JOIN trades t ON t.order_id = o.order_id "
    "GROUP BY o.order_id, o.quantity HAVING sum(t.quantity) > o.quantity"
)


def test_invariant_rows_are_counted_as_violations(pg_up: PgServer, tmp_path: Path) -> None:
    db = pg_up.create_database()
    pg_up.query(db, "CREATE TABLE orders (order_id text PRIMARY KEY, quantity numeric)")
    pg_up.query(db, "CREATE TABLE trades (order_id text, quantity numeric)")
    pg_up.query(db, "INSERT INTO orders VALUES ('ok', 2), ('over', 1)")
    pg_up.query(db, "INSERT INTO trades VALUES ('ok', 1), ('ok', 1), ('over', 1), ('over', 1)")
    (tmp_path / "history.jsonl").write_text('{"type": "load", "run": "r1"}\n')
    spec = VerifySpec.model_validate(
        {
            "sql": {"dsn": pg_up.dsn(db), "query": "SELECT order_id FROM orders"},
            "invariants": {
                "over_traded": {"dsn": pg_up.dsn(db), "query": OVER_TRADED},
                "none_missing": {
                    "dsn": pg_up.dsn(db),
                    "query": "SELECT order_id FROM orders WHERE quantity IS NULL",
                },
            },
            "deadline": "5s",
        }
    )
    asyncio.run(final_read(spec, tmp_path))
    record = json.loads((tmp_path / "verify.json").read_text())
    assert record["invariants"]["over_traded"] == {"violations": 1, "rows": ["over"], "error": None}
    assert record["invariants"]["none_missing"]["violations"] == 0


def test_invariant_keys_must_name_a_query() -> None:
    validate_metric_name("invariant.over_traded", [], has_verify=True, invariants=["over_traded"])
    with pytest.raises(ValueError, match=r"names no query of verify\.invariants"):
        validate_metric_name(
            "invariant.over_trade", [], has_verify=True, invariants=["over_traded"]
        )
