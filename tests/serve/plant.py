"""Run directories written the way the runner and the verdict step write them, for the tests and
the benchmark that need many runs or a chosen history without running each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def plant_run(runs: Path, run_id: str, *, title: str = "Planted experiment", started_at: float = 1.8e9,
              outcome: str | None = "held", metrics: dict[str, Any] | None = None,
              records: list[dict[str, Any]] | None = None) -> Path:
    d = runs / run_id
    d.mkdir(parents=True)
    (d / "experiment.json").write_text(json.dumps({
        "path": f"/exp/{title}.yaml", "run_id": run_id,
        "experiment": {"title": title, "targets": {"svc": {"process": "svc.py", "pid": None}}}}))
    recs = records if records is not None else [
        {"type": "run", "t": 0.0, "run_id": run_id, "title": title, "started_at": started_at, "pid": 1},
        {"type": "phase", "t": 0.01, "name": "baseline"},
    ]
    (d / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    if outcome is not None:
        (d / "summary.json").write_text(json.dumps({
            "run_id": run_id, "title": title, "outcome": outcome, "exit_code": 0, "reason": None,
            "started_at": started_at,
            "analysis": {"phases": {"t_end": 12.0}, "metrics": {
                "detection_time": 0.2, "time_to_recovery": 1.0, "latency.p99.fault": 0.3,
                "error_rate.fault": 0.1, "lost_writes": 0, **(metrics or {})}},
        }))
    return d
