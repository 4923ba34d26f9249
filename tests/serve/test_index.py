"""The SQLite index: built from the run directories, rebuilt when missing or of another schema,
updated when a run's files change, and reading a running run's journal on from its offset."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.serve.plant import plant_run

from chaoslab.serve import trend
from chaoslab.serve.index import INDEX_FILE, RunIndex


def test_index_follows_the_directories(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plant_run(runs, "20260101-000000-a-0001", started_at=1.8e9, outcome="held")
    live = plant_run(runs, "20260101-000100-b-0002", started_at=1.8e9 + 60, outcome=None)
    idx = RunIndex(runs)
    idx.refresh()
    rows = idx.runs()
    assert [r.run_id for r in rows] == ["20260101-000100-b-0002", "20260101-000000-a-0001"]  # newest first
    assert rows[0].running and rows[0].phase == "baseline" and rows[1].outcome == "held"
    offset = rows[0].journal_offset
    assert offset == (live / "journal.jsonl").stat().st_size

    # the running run goes on: only the new bytes are read, from the stored offset
    with open(live / "journal.jsonl", "a") as f:
        f.write(json.dumps({"type": "phase", "t": 4.0, "name": "fault"}) + "\n")
    idx.refresh()
    row = idx.get("20260101-000100-b-0002")
    assert row is not None and row.phase == "fault" and row.duration == 4.0 and row.journal_offset > offset

    # it ends: the summary replaces what the journal said
    (live / "summary.json").write_text(json.dumps({"outcome": "aborted", "reason": "interrupted by SIGTERM",
                                                   "started_at": 1.8e9 + 60, "analysis": None}))
    idx.refresh()
    assert [r.run_id for r in idx.runs(outcome="aborted")] == ["20260101-000100-b-0002"]
    assert [r.run_id for r in idx.runs(text="SIGTERM")] == ["20260101-000100-b-0002"]
    assert idx.runs(outcome="running") == []

    # a finished run's summary re-rendered (`chaoslab report`): seen by the next full sweep
    done = runs / "20260101-000000-a-0001" / "summary.json"
    data = json.loads(done.read_text())
    data["outcome"] = "violated"
    done.write_text(json.dumps(data))
    idx.refresh(full=True)
    assert [r.run_id for r in idx.runs(outcome="violated")] == ["20260101-000000-a-0001"]

    # a directory removed leaves the index
    import shutil

    shutil.rmtree(runs / "20260101-000000-a-0001")
    idx.refresh()
    assert [r.run_id for r in idx.runs()] == ["20260101-000100-b-0002"]
    idx.close()


def test_index_is_rebuilt_when_missing_or_of_another_schema(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plant_run(runs, "20260101-000000-a-0001")
    idx = RunIndex(runs)
    idx.refresh()
    idx.close()
    (runs / INDEX_FILE).unlink()
    for suffix in ("-wal", "-shm"):
        (runs / (INDEX_FILE + suffix)).unlink(missing_ok=True)
    idx = RunIndex(runs)
    idx.refresh()
    assert len(idx.runs()) == 1
    idx.close()
    db = sqlite3.connect(runs / INDEX_FILE)
    db.execute("PRAGMA user_version=999")
    db.execute("UPDATE runs SET title='stale'")
    db.commit()
    db.close()
    idx = RunIndex(runs)
    idx.refresh()
    assert [r.title for r in idx.runs()] == ["Planted experiment"]
    idx.close()


def test_regression_is_a_clear_worsening_only(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plant_run(runs, "20260101-000000-a-0001", started_at=1.8e9, metrics={"time_to_recovery": 1.0})
    plant_run(runs, "20260101-000100-a-0002", started_at=1.8e9 + 60, metrics={"time_to_recovery": 1.3})
    idx = RunIndex(runs)
    idx.refresh()
    cmp = trend.compare(idx.runs())
    assert cmp is not None and cmp.regressions == []  # 1.0 s -> 1.3 s is noise
    plant_run(runs, "20260101-000200-a-0003", started_at=1.8e9 + 120,
              metrics={"time_to_recovery": 4.0, "lost_writes": 2})
    idx.refresh()
    cmp = trend.compare(idx.runs())
    assert cmp is not None and cmp.regressions == ["time to recovery", "lost writes"]
    assert cmp.previous.run_id == "20260101-000100-a-0002"
    idx.close()


def test_a_suites_runs_are_indexed_one_level_down(tmp_path: Path) -> None:
    """`chaoslab suite run` writes suite-<id>/<run id>/: those runs are runs like any other."""
    runs = tmp_path / "runs"
    plant_run(runs, "20260101-000000-a-0001")
    plant_run(runs / "suite-20260101-000100-nightly-0002", "20260101-000101-b-0003", started_at=1.8e9 + 100)
    (runs / "suite-20260101-000100-nightly-0002" / "suite.md").write_text("# a suite's own report\n")
    idx = RunIndex(runs)
    idx.refresh()
    rows = {r.run_id: r.path for r in idx.runs()}
    assert rows == {"20260101-000000-a-0001": "20260101-000000-a-0001",
                    "20260101-000101-b-0003": "suite-20260101-000100-nightly-0002/20260101-000101-b-0003"}
    idx.close()
