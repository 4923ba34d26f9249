"""The poison analysis on hand-built runs: each kind's fate, and a planted defect counted exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis_rundirs import timeline, write_run

from chaoslab.analysis import analyze

KINDS = ["missing_field", "bad_decimal", "truncated_json"]


def _ops(n: int) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        kind = KINDS[k % 3] if k % 2 else None  # every odd operation is malformed
        edge = kind == "truncated_json"
        op = {
            "id": k,
            "key": f"r-{k}",
            "t_scheduled": k * 0.02,
            "t_sent": k * 0.02,
            "t_done": k * 0.02 + 0.01,
            "outcome": "fail" if edge else "ok",
            "status": 400 if edge else 201,
            "latency": 0.01,
            "ack": not edge,
            "refused": edge,
        }
        if kind:
            op["poison"] = kind
        out.append(op)
    return out


def _run(tmp_path: Path, stored: list[str], dead: list[str] | None) -> dict[str, Any]:
    verify: dict[str, Any] = {"ok": True, "ids": stored, "attempts": 1}
    if dead is not None:
        verify["dead_letters"] = dead
    write_run(
        tmp_path,
        journal=timeline(),
        ops=_ops(600),
        verify=verify,
        experiment={
            "verify": {"http": {"url": "x"}},
            "hypothesis": {"poison_stored_as_valid": {"max": 0}, "lost_writes": {"max": 0}},
        },
    )
    return analyze(tmp_path)


def test_a_correct_system_rejects_or_dead_letters_every_defect(tmp_path: Path) -> None:
    ops = _ops(600)
    clean = [o["key"] for o in ops if "poison" not in o]
    dead = [o["key"] for o in ops if o.get("poison") in ("missing_field", "bad_decimal")]
    a = _run(tmp_path, clean, dead)
    p = a["poison"]
    assert (p["stored_as_valid"], p["lost"]) == (0, 0)
    assert p["kinds"]["truncated_json"]["rejected"] == 100
    assert (
        p["kinds"]["missing_field"]["dead_lettered"]
        == p["kinds"]["bad_decimal"]["dead_lettered"]
        == 100
    )
    assert a["data_loss"]["lost"] == [] and a["data_loss"]["unexpected"] == []
    assert p["stall_suspected"] is False
    assert a["held"] is True


def test_well_formed_records_missing_after_poison_suggest_a_stall(tmp_path: Path) -> None:
    ops = _ops(600)
    clean = [o["key"] for o in ops if "poison" not in o]
    dead = [o["key"] for o in ops if o.get("poison") in ("missing_field", "bad_decimal")]
    a = _run(tmp_path, clean[:200], dead)  # the last 100 well-formed records never arrived
    assert a["poison"]["stall_suspected"] is True and a["poison"]["clean_lost"] == 100
    assert any("may have stalled" in f for f in a["findings"])


def test_a_planted_defect_is_reported_with_its_kind_and_count(tmp_path: Path) -> None:
    ops = _ops(600)
    clean = [o["key"] for o in ops if "poison" not in o]
    decimals = [o["key"] for o in ops if o.get("poison") == "bad_decimal"]
    missing = [o["key"] for o in ops if o.get("poison") == "missing_field"]
    a = _run(
        tmp_path, clean + decimals, missing[:-3]
    )  # bad decimals stored; 3 missing_field vanished
    p = a["poison"]
    assert p["kinds"]["bad_decimal"]["stored_as_valid"] == 100
    assert p["kinds"]["missing_field"]["stored_as_valid"] == 0
    assert p["kinds"]["missing_field"]["lost"] == 3 and p["lost"] == 3
    assert a["metrics"]["poison_stored_as_valid"] == 100
    assert any("bad_decimal got through: 100" in f for f in a["findings"])
    assert a["data_loss"]["unexpected"] == []  # malformed records are judged here, not as strangers
    assert a["held"] is False


def test_without_a_dead_letter_read_lost_is_unknown_not_zero(tmp_path: Path) -> None:
    ops = _ops(600)
    a = _run(tmp_path, [o["key"] for o in ops if "poison" not in o], None)
    assert a["poison"]["lost"] is None and a["metrics"]["poison_lost"] is None
    assert a["metrics"]["poison_stored_as_valid"] == 0
