"""The run's timeline as the journal recorded it: baseline [0, t_inject), fault, recovery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..experiment.names import PHASES
from ..records import Record


@dataclass(frozen=True)
class Phases:
    t_inject: float | None
    t_revert: float | None
    t_end: float
    complete: bool  # False when the journal has no end record (a crashed or killed run)

    def of(self, t: float) -> str:
        """The phase an instant belongs to (B = [0, t_inject), F = [t_inject, t_revert), V = rest)."""
        if self.t_inject is None or t < self.t_inject:
            return "baseline"
        if self.t_revert is None or t < self.t_revert:
            return "fault"
        return "recovery"

    def bounds(self, phase: str) -> tuple[float, float] | None:
        """[start, end) of a phase, or None when the run never reached it."""
        ends = {
            "baseline": (0.0, self.t_inject if self.t_inject is not None else self.t_end),
            "fault": (self.t_inject, self.t_revert if self.t_revert is not None else self.t_end),
            "recovery": (self.t_revert, self.t_end),
        }
        start, end = ends[phase]
        if start is None or end is None:
            return None
        return (start, max(start, end))

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_inject": self.t_inject,
            "t_revert": self.t_revert,
            "t_end": self.t_end,
            "complete": self.complete,
            "durations": {
                p: (b[1] - b[0]) if (b := self.bounds(p)) is not None else None for p in PHASES
            },
        }


def phases_from_journal(journal: list[Record]) -> Phases:
    """Phase times from ``phase`` records, falling back to fault records and the last timestamp.

    A partial journal (crash) has no ``end``: the run ends at its last record, and a fault
    phase that was never closed runs to that point. The run ends at the ``verify`` phase mark
    when there is one.
    """
    marks: dict[str, float] = {}
    injects: list[float] = []
    reverts: list[float] = []
    last = 0.0
    ended = False
    for rec in journal:
        t = float(rec["t"])
        last = max(last, t)
        if rec["type"] == "phase":
            marks.setdefault(rec["name"], t)
        elif rec["type"] == "fault":
            if rec["action"] == "inject":
                injects.append(t)
            elif rec["action"] == "revert":
                reverts.append(t)
        elif rec["type"] == "end":
            ended = True
    t_inject = marks.get("fault", min(injects) if injects else None)
    t_revert = marks.get("recovery", max(reverts) if reverts and len(reverts) >= len(injects) else None)
    # the run proper ends where the runner stopped observing: the final read (``verify``) and
    # rollbacks that follow are not part of the recovery phase
    t_end = marks.get("verify", marks.get("end", last))
    if t_revert is not None and t_inject is None:
        t_revert = None
    return Phases(t_inject=t_inject, t_revert=t_revert, t_end=max(t_end, t_revert or 0.0), complete=ended or "end" in marks)


def fault_intervals(journal: list[Record], t_end: float) -> list[dict[str, Any]]:
    """Each injected fault's [inject, revert] interval (open faults run to ``t_end``), for charts."""
    open_: dict[tuple[Any, ...], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for rec in journal:
        if rec["type"] != "fault":
            continue
        key = (rec["step"], rec["fault"], str(rec["target"]))
        if rec["action"] == "inject":
            open_[key] = {
                "fault": rec["fault"],
                "target": rec["target"],
                "describe": rec["describe"],
                "start": float(rec["t"]),
                "end": None,
            }
            out.append(open_[key])
        elif rec["action"] == "revert" and key in open_:
            open_.pop(key)["end"] = float(rec["t"])
    for item in out:
        if item["end"] is None:
            item["end"] = t_end
    return out
