"""The plan: every fault occurrence of the method on the timeline, resolved before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .. import faults
from ..experiment.model import Experiment
from ..faults import Fault
from ..units import format_duration


@dataclass
class PlannedFault:
    step: int
    occurrence: int
    at: float
    duration: float | None
    cls: type[Fault[Any]]
    params: BaseModel
    target: str | None

    @property
    def label(self) -> str:
        return f"method[{self.step}]" + (f"#{self.occurrence + 1}" if self.occurrence else "")

    @property
    def end(self) -> float:
        return self.at + (self.duration or 0.0)


def plan(exp: Experiment) -> list[PlannedFault]:
    out = []
    for i, step in enumerate(exp.method):
        cls = faults.get(step.fault)
        for k, at in enumerate(step.occurrences()):
            out.append(PlannedFault(i, k, at, step.duration, cls, step.params, step.target))
    return sorted(out, key=lambda p: (p.at, p.step, p.occurrence))


def describe_plan(exp: Experiment, planned: list[PlannedFault], resolved: dict[str, str]) -> list[str]:
    from ..experiment.model import StableBaseline, SteadyRecovery

    lines = [f"plan for {exp.title!r}:"]
    lines.append(f"  0s            baseline starts (probes: {', '.join(exp.probes) or 'none'}"
                 f"{', load' if exp.load else ''})")
    # with `baseline:`, step offsets count from the baseline's end (shown at its longest)
    shift = exp.baseline_max
    if isinstance(exp.baseline, StableBaseline):
        lines.append(f"  {format_duration(exp.baseline.min):<13} baseline ends once stable "
                     f"(at {format_duration(exp.baseline.max)} at the latest; step offsets count from its end)")
    elif exp.baseline is not None:
        lines.append(f"  {format_duration(shift):<13} baseline ends (step offsets count from here)")
    for p in planned:
        target = f" on {resolved.get(p.target, p.target)}" if p.target else ""
        params = p.params.model_dump(mode="json", exclude_defaults=True)
        extra = (" " + " ".join(f"{k}={v}" for k, v in params.items())) if params else ""
        how_long = f" for {format_duration(p.duration)}" if p.duration else " (instant)"
        lines.append(f"  {format_duration(shift + p.at):<13} {p.cls.name}{target}{how_long}{extra}  [{p.label}]")
    end = shift + max((p.end for p in planned), default=0.0)
    if isinstance(exp.recovery, SteadyRecovery):
        lines.append(f"  {format_duration(end):<13} recovery observed until steady, then "
                     f"{format_duration(exp.recovery.min)} more ({format_duration(exp.recovery.max)} at most)")
    else:
        lines.append(f"  {format_duration(end):<13} recovery observed for {format_duration(exp.recovery)}")
    latest = " at the latest" if isinstance(exp.recovery, SteadyRecovery) else ""
    lines.append(f"  {format_duration(end + exp.recovery_max):<13} end{latest} "
                 f"(hard deadline {format_duration(exp.max_duration)})")
    return lines
