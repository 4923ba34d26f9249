"""The steady state, the fault's impact and the recovery from it (GUIDE §4, docs/metrics.md).

Two steps: ``steady_state`` cuts the run into 1 s windows (of the load, else of the probes),
learns the tolerance from the baseline and applies the window rule; ``recovery_figures`` turns
its answer into the time-to-recovery figures, located to the operation (instants.py) when there
was an impact to locate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import instants, windows
from .figures import Figures
from .phases import Phases
from .rundata import RunData
from .windows import Recovery, Tolerance, Window

#: The figures of this step, in the order analysis.json has always listed them.
KEYS = ("time_to_recovery", "time_to_recovery.from_impact", "impact_onset", "time_to_recovery.exact",
        "impact_onset.exact")
_TTR = ("time_to_recovery", "time_to_recovery.from_impact", "time_to_recovery.exact")


@dataclass
class SteadyState:
    windows: list[Window]
    tolerance: Tolerance
    basis: str
    """``load`` or ``probes``: what the windows count."""
    recovery: Recovery | None
    """The window rule's answer; None when no fault was injected or nothing was measured."""

    @property
    def impacted(self) -> bool:
        return bool(self.recovery and self.recovery.impacted)

    def to_dict(self) -> dict[str, Any]:
        return {**self.tolerance.to_dict(), "basis": self.basis, "recovered_after": windows.RECOVERED_AFTER}


def steady_state(run: RunData, load: Figures) -> SteadyState:
    """The judged windows and the window rule's answer; ``load``: the load's figures, whose
    baseline availability and p99 the tolerance is learnt from."""
    ph = run.phases
    if run.ops:
        wins = windows.op_windows(run.ops, ph.t_end)
        tol = windows.learn_tolerance(load.values.get("availability.baseline"), load.values.get("latency.p99.baseline"))
        basis = "load"
    else:
        samples = run.samples
        wins = windows.sample_windows(samples, ph.t_end)
        base = [s for s in samples if ph.of(float(s["t"])) == "baseline"]
        tol = windows.learn_tolerance(sum(bool(s.get("ok")) for s in base) / len(base) if base else None, None)
        basis = "probes"
    windows.judge(wins, tol)
    rec = None
    if ph.t_inject is not None and any(w.n for w in wins):
        rec = windows.recovery(wins, ph.t_inject, t_revert=ph.t_revert)
    return SteadyState(wins, tol, basis, rec)


def recovery_figures(run: RunData, steady: SteadyState) -> Figures:
    """Impact onset and time to recovery by the window rule, and the same located exactly."""
    ph = run.phases
    out = Figures(dict.fromkeys(KEYS))
    rec = steady.recovery
    if ph.t_inject is None:
        out.missing.update(dict.fromkeys(KEYS, "no fault was injected"))
    elif rec is None:
        out.missing.update(dict.fromkeys(KEYS, "nothing was measured (no load and no probe samples)"))
    elif not rec.impacted:
        out.values.update(dict.fromkeys(_TTR, 0.0))
        out.missing.update(dict.fromkeys(("impact_onset", "impact_onset.exact"), "no impact was measured"))
    else:  # only an impact has instants to locate: the points are built for it alone
        tol = steady.tolerance
        points = instants.op_points(run.ops, tol) if run.ops else instants.sample_points(run.samples)
        _located(out, rec, instants.exact(points, tol, ph.t_inject, rec, ph.t_end), ph)
    return out


def _located(out: Figures, rec: Recovery, exact: instants.Instants, ph: Phases) -> None:
    assert ph.t_inject is not None
    metrics, missing = out.values, out.missing
    onset = max(rec.impact_onset or 0.0, ph.t_inject)
    metrics["impact_onset"] = onset - ph.t_inject
    if exact.impact_onset is not None:
        metrics["impact_onset.exact"] = max(0.0, exact.impact_onset - ph.t_inject)
    if rec.recovered_at is None:
        why = "not recovered by the end of the run" if ph.complete else "the run ended (crashed) before recovery"
        missing.update(dict.fromkeys(_TTR, why))
    elif ph.t_revert is None:
        metrics["time_to_recovery.from_impact"] = rec.recovered_at - onset
        missing["time_to_recovery"] = missing["time_to_recovery.exact"] = "the fault was never reverted"
    else:
        metrics["time_to_recovery"] = max(0.0, rec.recovered_at - ph.t_revert)
        metrics["time_to_recovery.from_impact"] = max(0.0, rec.recovered_at - onset)
        if exact.recovered_at is not None:
            metrics["time_to_recovery.exact"] = max(0.0, exact.recovered_at - ph.t_revert)
