"""What the console reads from one run directory (docs/runs.md); the directory is the truth.

Everything here reads files the runner and the verdict step write (experiment.json,
journal.jsonl, summary.json) and nothing else, so the console shows what ``chaoslab report``
would, and a run killed mid-way (no summary) shows as far as its journal goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..journal import EXPERIMENT, JOURNAL, SUMMARY, Tail
from ..report import FILES

#: Target fields -> the platform they live on (the Runs page's "platform" column).
_PLATFORMS = (
    (("pod", "deployment", "node"), "kubernetes"),
    (("container", "compose"), "docker"),
    (("service", "stack"), "stack"),
    (("process", "pid", "cgroup"), "local"),
    (("host", "address"), "hosts"),
    (("url", "proxy", "path"), "local"),
)

#: Downloads offered on a finished run's page: the reports, the summary and the raw journal.
DOWNLOADS = (*FILES.values(), SUMMARY, JOURNAL, "history.jsonl", EXPERIMENT)

#: The figures the Runs and Experiment pages compare, as (analysis metric, column).
FIGURES = (
    ("detection_time", "detection"),
    ("time_to_recovery", "ttr"),
    ("latency.p99.fault", "p99_fault"),
    ("error_rate.fault", "error_fault"),
    ("lost_writes", "lost"),
)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def platform_of(experiment: dict[str, Any]) -> str:
    kinds: set[str] = set()
    for spec in (experiment.get("targets") or {}).values():
        if isinstance(spec, dict):
            kinds.update(k for k, v in spec.items() if v is not None)
    for fields, name in _PLATFORMS:
        if kinds & set(fields):
            return name
    return "-"


@dataclass
class JournalState:
    """What the journal said so far: grown line by line from a byte offset, never re-read whole."""

    offset: int = 0
    phase: str = "starting"
    last_t: float = 0.0
    started_at: float | None = None
    pid: int | None = None
    aborted: str | None = None
    ended: bool = False

    def feed(self, rec: dict[str, Any]) -> None:
        t = rec.get("t")
        if isinstance(t, int | float):
            self.last_t = max(self.last_t, float(t))
        kind = rec.get("type")
        if kind == "run":
            self.started_at = rec.get("started_at")
            self.pid = rec.get("pid")
        elif kind == "phase":
            self.phase = str(rec.get("name"))
        elif kind == "abort" and self.aborted is None:
            self.aborted = str(rec.get("reason"))
        elif kind == "end":
            self.ended = True

    def read_on(self, path: Path) -> None:
        """Feed the complete lines written since ``offset`` (a torn last line waits)."""
        tail = Tail(path, self.offset)
        for rec in tail.read():
            self.feed(rec)
        self.offset = tail.offset


def runner_alive(pid: int | None, started_at: float | None) -> bool:
    """Whether the run's runner still runs: its pid exists and was created before the run started
    (a pid reused by a later process was created after)."""
    if not pid or started_at is None:
        return False
    try:
        proc = psutil.Process(int(pid))
        return proc.create_time() <= started_at + 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):
        return False


def figures(summary: dict[str, Any]) -> dict[str, float | None]:
    metrics = ((summary.get("analysis") or {}).get("metrics")) or {}
    out: dict[str, float | None] = {}
    for metric, column in FIGURES:
        v = metrics.get(metric)
        out[column] = float(v) if isinstance(v, int | float) else None
    return out


def metric_probes(experiment: dict[str, Any]) -> dict[str, str]:
    """The run's Prometheus probes, by name, with their PromQL: the system's own metrics, drawn
    from the values their samples recorded on the run's time axis. (A series to chart without
    judging it is a Prometheus probe with ``signal: false`` and no ``expect``.)"""
    probes = ((experiment.get("experiment") or {}).get("probes")) or {}
    return {n: str((p.get("prometheus") or {}).get("query", "")) for n, p in sorted(probes.items())
            if isinstance(p, dict) and isinstance(p.get("prometheus"), dict)}
