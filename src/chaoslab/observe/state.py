"""The chaos state of one run as plain numbers, fed by journal records and load operations.

The live exporter feeds it every record as it is emitted; the standalone exporter replays run
directories into it. Both then expose it through the same collector (``exporter.py``).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..journal import HISTORY, JOURNAL, SUMMARY, Tail
from ..records import FaultRecord, Record, SampleRecord

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
VERDICTS = ("held", "violated", "aborted", "error", "invalid")


@dataclass
class Histogram:
    """Cumulative-at-export bucket counts (Prometheus ``le`` semantics)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(acc)))
        return out


@dataclass
class RunState:
    experiment: str = ""
    run_id: str = ""
    pid: int | None = None
    active: bool = False
    phase: str | None = None
    faults_active: dict[tuple[str, str], bool] = field(default_factory=dict)
    injections: dict[tuple[str, str], int] = field(default_factory=dict)
    probe_ok: dict[str, bool] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=dict)
    probe_latency: dict[str, Histogram] = field(default_factory=dict)
    load_rate: float | None = None
    load_ops: dict[str, int] = field(default_factory=dict)
    load_latency: Histogram = field(default_factory=Histogram)
    ebpf: dict[str, float] = field(default_factory=dict)
    aborts: int = 0
    verdict: str | None = None
    exit_code: int | None = None
    finished_at: float | None = None

    # -- journal records ----------------------------------------------------------------------
    def apply(self, rec: Record) -> None:
        if rec["type"] == "run":
            self.experiment = rec["title"] or self.experiment
            self.run_id = rec["run_id"] or self.run_id
            pid = rec.get("pid")
            self.pid = pid if isinstance(pid, int) else None
            self.active = True
        elif rec["type"] == "phase":
            self.phase = rec["name"]
            if self.phase == "end":
                self.active = False
        elif rec["type"] == "fault":
            self._fault(rec)
        elif rec["type"] == "sample":
            self._sample(rec)
        elif rec["type"] == "abort":
            self.aborts += 1
        elif rec["type"] == "event" and rec["source"] == "ebpf":
            # counts ride as an event's open fields, beyond what EventRecord names
            count = rec.get("count")
            if isinstance(count, int | float):
                self.ebpf[rec["kind"]] = self.ebpf.get(rec["kind"], 0.0) + float(count)

    def _fault(self, rec: FaultRecord) -> None:
        key = (rec["fault"], rec["target"] or "")
        if rec["action"] == "inject":
            self.faults_active[key] = True
            self.injections[key] = self.injections.get(key, 0) + 1
        elif rec["action"] in ("revert", "end"):
            self.faults_active[key] = False
        else:
            self.faults_active.setdefault(key, False)

    def _sample(self, rec: SampleRecord) -> None:
        probe = rec["probe"]
        self.probe_ok[probe] = rec["ok"]
        self.probe_failures[probe] = self.probe_failures.get(probe, 0) + (not rec["ok"])
        latency = rec["latency"]
        hist = self.probe_latency.setdefault(probe, Histogram())
        if latency is not None:
            hist.observe(float(latency))

    # -- load history ---------------------------------------------------------------------------
    def apply_op(self, op: dict[str, Any]) -> None:
        if op.get("type") == "load":
            rate = op.get("rate")
            self.load_rate = float(rate) if isinstance(rate, int | float) else None
            return
        if op.get("cut"):
            return  # still in flight when the run ended: not an outcome
        outcome = str(op.get("outcome"))
        if op.get("t_sent") is None:
            outcome = "unsent"
        self.load_ops[outcome] = self.load_ops.get(outcome, 0) + 1
        latency = op.get("latency")
        if outcome == "ok" and isinstance(latency, int | float):
            self.load_latency.observe(float(latency))

    # -- the end ----------------------------------------------------------------------------------
    def apply_summary(self, summary: dict[str, Any]) -> None:
        self.verdict = str(summary.get("outcome"))
        code = summary.get("exit_code")
        self.exit_code = int(code) if isinstance(code, int) else None
        started = summary.get("started_at")
        self.finished_at = float(started) if isinstance(started, int | float) else None
        self.active = False


class RunFollower:
    """A run directory replayed (and followed while it grows) into a ``RunState``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.state = RunState(run_id=run_dir.name)
        self._journal = Tail(run_dir / JOURNAL)
        self._history = Tail(run_dir / HISTORY)
        self.finished = False

    def update(self) -> RunState:
        if self.finished:
            return self.state
        for rec in self._journal.read():
            # trusted as written, as journal.read_journal does: only the runner writes this file
            self.state.apply(cast(Record, rec))
        for op in self._history.read():
            self.state.apply_op(op)
        summary = self.run_dir / SUMMARY
        if summary.exists():
            try:
                self.state.apply_summary(json.loads(summary.read_text()))
                self.finished = True
            except ValueError:
                pass  # being written right now: next scrape
        return self.state
