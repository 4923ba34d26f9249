"""The runner's evidence view (runner/evidence.py) answers only from complete windows.

A recorded run whose failures are written late (timeouts land a second after they were due)
is fed to the view in the order its lines were written; whenever the view answers, its answer
must be the one the analysis gives on the finished run. A view that judged a window still
filling would see a second of late timeouts as good and call the recovery a second early.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaoslab.analysis import analyze
from chaoslab.journal import EXPERIMENT, HISTORY
from chaoslab.runner.evidence import Evidence

RATE = 100
T_INJECT, T_REVERT, T_END = 10.0, 12.0, 25.0


def _op(k: int) -> dict[str, Any]:
    t = round(k / RATE, 6)
    # down during the fault, and half the requests of the 1.5 s after it time out
    late = T_INJECT <= t < T_REVERT or (T_REVERT <= t < T_REVERT + 1.5 and k % 2 == 0)
    if late:
        return {"id": k, "key": f"r-{k}", "t_scheduled": t, "t_sent": t, "t_done": round(t + 1.0, 6),
                "outcome": "timeout", "status": None, "latency": None, "ack": False}
    return {"id": k, "key": f"r-{k}", "t_scheduled": t, "t_sent": t, "t_done": round(t + 0.004, 6),
            "outcome": "ok", "status": 200, "latency": 0.004, "ack": True}


def _recorded_run(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    run_dir.mkdir()
    journal: list[dict[str, Any]] = [
        {"type": "run", "t": 0.0, "run_id": "r", "title": "late timeouts", "started_at": 0.0},
        {"type": "phase", "t": 0.0, "name": "baseline"},
        {"type": "phase", "t": T_INJECT, "name": "fault"},
        {"type": "phase", "t": T_REVERT, "name": "recovery"},
        {"type": "phase", "t": T_END, "name": "end"},
        {"type": "end", "t": T_END, "errors": []},
    ]
    ops = [_op(k) for k in range(int(T_END * RATE))]
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in journal))
    header = {"type": "load", "run": "r", "kind": "http", "rate": RATE, "timeout": 1.0, "max_lag": 0.1}
    (run_dir / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in [header, *ops]))
    (run_dir / EXPERIMENT).write_text(json.dumps({"experiment": {"title": "late timeouts", "load": {}}}))
    return journal, sorted(ops, key=lambda op: op["t_done"])


def test_the_view_answers_only_what_the_finished_run_will_say(tmp_path: Path) -> None:
    journal, written = _recorded_run(tmp_path / "run")
    final = analyze(tmp_path / "run")["metrics"]
    assert final["time_to_recovery"] == 2.0  # windows 12 and 13 hold late timeouts: recovered at 14

    ev = Evidence(tmp_path / "run" / "not-read", [])
    j = k = 0
    answers = []
    for tick in range(1, int(T_END * 20)):  # every 50 ms, with what had been written by then
        now = tick / 20
        while j < len(journal) and journal[j]["t"] <= now:
            ev.on_record(journal[j])  # type: ignore[arg-type]
            j += 1
        while k < len(written) and written[k]["t_done"] <= now:
            ev.take(written[k])
            k += 1
        answer = ev.recovery()
        if answer is not None:
            assert answer.recovered_at is not None
            answers.append((now, answer.recovered_at - T_REVERT))
    assert answers, "the view never saw the recovery"
    assert {ttr for _, ttr in answers} == {final["time_to_recovery"]}
    # not before the last window of the recovery rule (16, 17) was complete
    assert answers[0][0] >= 17.0


def test_a_failing_bound_on_a_recovery_figure_keeps_the_phase_open_until_it_holds(tmp_path: Path) -> None:
    """The recovery phase's availability is 0.85 when the rule has its answer (at 17 s), 0.9 from
    19.5 s on: a phase ended at the answer would fail `availability.recovery: {min: 0.9}`, which
    the full run (to 25 s) passes. The view names the bound as failing until it holds."""
    journal, written = _recorded_run(tmp_path / "run")
    hypothesis = {"availability.recovery": {"min": 0.9}}
    final = analyze(tmp_path / "run")["metrics"]["availability.recovery"]
    assert final >= 0.9
    ev = Evidence(tmp_path / "run" / "not-read", [])
    j = k = 0
    failing: dict[float, list[str]] = {}
    for tick in range(1, int(T_END * 20)):
        now = tick / 20
        while j < len(journal) and journal[j]["t"] <= now:
            ev.on_record(journal[j])  # type: ignore[arg-type]
            j += 1
        while k < len(written) and written[k]["t_done"] <= now:
            ev.take(written[k])
            k += 1
        if ev.recovery() is not None:
            failing[now] = ev.recovery_bounds_failing(hypothesis, now)
    first = min(failing)
    assert failing[first] == ["availability.recovery"]
    holds = min(t for t, names in failing.items() if not names)
    assert 19.5 <= holds <= 21.0, holds
    assert all(not names for t, names in failing.items() if t >= holds)
