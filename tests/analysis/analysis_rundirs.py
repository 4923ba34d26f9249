"""Hand-built run directories: journal, history and final read written record by record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_run(
    run_dir: Path,
    *,
    journal: list[dict[str, Any]],
    ops: list[dict[str, Any]] | None = None,
    verify: dict[str, Any] | None = None,
    experiment: dict[str, Any] | None = None,
    max_lag: float = 0.1,
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    exp = {"title": "hand-made", "method": [{"fault": "x"}], **(experiment or {})}
    (run_dir / "experiment.json").write_text(json.dumps({"path": "x.yaml", "experiment": exp}))
    (run_dir / "journal.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in sorted(journal, key=lambda r: r["t"]))
    )
    if ops is not None:
        header = {"type": "load", "run": "r", "rate": 50, "max_lag": max_lag}
        (run_dir / "history.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in [header, *ops])
        )
    if verify is not None:
        (run_dir / "verify.json").write_text(json.dumps(verify))
    return run_dir


def timeline(
    inject: float | None = 5.0, revert: float | None = 8.0, end: float | None = 15.0
) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = [{"type": "phase", "t": 0.0, "name": "baseline"}]
    if inject is not None:
        recs += [
            {"type": "phase", "t": inject, "name": "fault"},
            {
                "type": "fault",
                "t": inject,
                "action": "inject",
                "step": 0,
                "fault": "x",
                "target": "t",
                "describe": "x",
            },
        ]
    if revert is not None:
        recs += [
            {
                "type": "fault",
                "t": revert,
                "action": "revert",
                "step": 0,
                "fault": "x",
                "target": "t",
                "describe": "x",
            },
            {"type": "phase", "t": revert, "name": "recovery"},
        ]
    if end is not None:
        recs += [
            {"type": "phase", "t": end, "name": "end"},
            {"type": "end", "t": end, "errors": []},
        ]
    return recs


def samples(
    probe: str, every: float, until: float, failing: Callable[[float], bool]
) -> list[dict[str, Any]]:
    out, t = [], 0.0
    while t < until:
        bad = failing(t)
        out.append(
            {
                "type": "sample",
                "t": round(t, 6),
                "probe": probe,
                "ok": not bad,
                "value": None,
                "latency": 0.001,
                "error": "HTTP 503" if bad else None,
            }
        )
        t += every
    return out


def ops(
    rate: float,
    until: float,
    outcome: Callable[[float], str] = lambda t: "ok",
    latency: Callable[[float], float] = lambda t: 0.01,
    lag: float = 0.0005,
) -> list[dict[str, Any]]:
    out = []
    for k in range(int(rate * until)):
        t = k / rate
        o = outcome(t)
        sent = None if o == "unsent" else t + lag
        out.append(
            {
                "id": k,
                "key": f"r-{k}",
                "t_scheduled": t,
                "t_sent": sent,
                "t_done": t + latency(t),
                "outcome": "fail" if o in ("unsent", "refused") else o,
                "status": 201 if o == "ok" else (400 if o == "refused" else None),
                "latency": latency(t) if sent is not None else None,
                "ack": o == "ok",
            }
        )
    return out
