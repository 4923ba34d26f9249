"""An experiment's runs over time: the newest against the one before it, and what got worse.

A figure is flagged a regression only when it got *clearly* worse: by half again and by more
than a floor that run-to-run noise on a busy machine stays under (a 12 ms detection becoming
20 ms is noise; 0.2 s becoming 1.5 s is not). Any lost write more than before is a regression,
and so is a verdict that was held and no longer is.
"""

from __future__ import annotations

from dataclasses import dataclass

from .index import RunRow

#: column -> (label, unit, noise floor): the change must exceed the floor and 50 %.
FIGURES: dict[str, tuple[str, str, float]] = {
    "detection": ("detection time", "s", 0.5),
    "ttr": ("time to recovery", "s", 1.0),
    "p99_fault": ("p99 under the fault", "s", 0.05),
    "error_fault": ("error rate under the fault", "ratio", 0.05),
    "lost": ("lost writes", "count", 0.0),
}
RATIO = 1.5


@dataclass
class Change:
    column: str
    label: str
    previous: float | None
    newest: float | None
    regression: bool


@dataclass
class Comparison:
    newest: RunRow
    previous: RunRow
    changes: list[Change]
    verdict_regressed: bool

    @property
    def regressions(self) -> list[str]:
        out = [c.label for c in self.changes if c.regression]
        if self.verdict_regressed:
            out.insert(0, f"verdict {self.previous.outcome} -> {self.newest.outcome}")
        return out


def worse(column: str, previous: float | None, newest: float | None) -> bool:
    if previous is None or newest is None:
        return False
    floor = FIGURES[column][2]
    if column == "lost":
        return newest > previous
    return newest - previous > floor and newest > previous * RATIO


def compare(runs: list[RunRow]) -> Comparison | None:
    """The newest finished run against the finished one before it (``runs`` newest first)."""
    done = [r for r in runs if not r.running]
    if len(done) < 2:
        return None
    new, old = done[0], done[1]
    changes = [Change(col, label, getattr(old, col), getattr(new, col), worse(col, getattr(old, col), getattr(new, col)))
               for col, (label, _, _) in FIGURES.items()]
    return Comparison(new, old, changes, old.outcome == "held" and new.outcome != "held")
