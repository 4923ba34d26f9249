"""``analyze(run_dir)``: one run's analysis, a step per part (docs/metrics.md).

The run is read once (rundata.py); each step takes it and returns its typed part of the
``Analysis`` (model.py): windows and recovery, detection, data loss, poison, the score, the
judged hypothesis, and the verdict, which is part of the analysis like the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from ..experiment.names import PHASES
from ..records import events
from . import cost, dataloss, poison
from .containerevents import container_events
from .detection import detect
from .ebpf import ebpf_view
from .figures import Figures
from .hypothesis import judge_all
from .kubeevents import kubernetes_events
from .model import Analysis
from .outcome import decide
from .phases import fault_intervals
from .rates import load_figures, probe_figures, probe_lanes
from .recovery import recovery_figures, steady_state
from .rundata import RunData, load_run
from .score import score
from .stackevents import stack_events
from .validity import validity


def _cost(run: RunData, load: Figures) -> Figures:
    sent = [float(op["t_sent"]) for op in run.ops if op.get("t_sent") is not None]
    return Figures(cost.metrics(run.journal, {p: load.values[f"operations.{p}"] for p in PHASES},
                                min(sent) if sent else None))


def _data_loss(run: RunData) -> tuple[dataloss.DataLoss, Figures]:
    """The data-loss check, on the history and final read without the poisoned records."""
    clean_ops, clean_verify = poison.clean_view(run.ops, run.verify)
    loss = dataloss.check(clean_ops, clean_verify, run.wants_verify)
    out = Figures(dict(loss.counts()))
    for key, v in out.values.items():
        if v is None:
            out.missing[key] = f"data loss {loss.status.upper().replace('_', ' ')}: {loss.reason}"
    return loss, out


def _poison(run: RunData, loss: dataloss.DataLoss) -> tuple[dict[str, Any] | None, Figures]:
    poisoning = poison.check(run.ops, run.verify)
    poison.note_stall(poisoning, loss.counts()["lost_writes"])
    return poisoning, poison.figures(poisoning)


def _invariants(run: RunData) -> Figures:
    """The violations each invariant query of the final read counted."""
    out = Figures()
    for name, inv in ((run.verify or {}).get("invariants") or {}).items():
        out.values[f"invariant.{name}"] = inv.get("violations")
        if inv.get("violations") is None:
            out.missing[f"invariant.{name}"] = "the invariant query could not be read: " + str(inv.get("error"))
    for name in run.hypothesis:
        if name.startswith("invariant.") and name not in out.values:
            out.missing[name] = "no invariant read (the run has no verify.json or no such query)"
    return out


def analyze_run(run: RunData) -> Analysis:
    """The analysis of a run read into ``run``; works on partial journals."""
    load = load_figures(run)
    probes = probe_figures(run)
    steady = steady_state(run, load)
    recovery = recovery_figures(run, steady)
    detection = detect(run)
    detected = detection.figures(injected=run.phases.t_inject is not None)
    loss, lost = _data_loss(run)
    poisoning, poisoned = _poison(run, loss)
    invariants = _invariants(run)
    valid = validity(run)
    # analysis.json lists the metrics, and the reasons they are missing, in this order
    measured = (load, probes, _cost(run, load), recovery, detected, lost, poisoned, invariants, valid.figures())
    missing = (load, recovery, detected, poisoned, lost, invariants, valid.figures())
    figures = Figures({k: v for f in measured for k, v in f.values.items()},
                      {k: v for f in missing for k, v in f.missing.items()})
    resilience = score(figures.values, steady.impacted)
    figures.values.update(resilience.figures().values)
    figures.missing.update(resilience.figures().missing)
    judgement = judge_all(run.hypothesis, figures.values, figures.missing, valid.valid)
    return Analysis(
        run_dir=run.run_dir,
        title=run.experiment.get("title"),
        description=run.experiment.get("description"),
        phases=run.phases,
        faults=fault_intervals(run.journal, run.phases.t_end),
        verdict=decide(run.journal, judgement, valid.invalid_reason),
        aborts=[cast(dict[str, Any], r) for r in run.journal if r["type"] == "stop" or r["type"] == "abort"],
        figures=figures,
        detection=detection,
        steady=steady,
        data_loss=loss,
        poison=poisoning,
        score=resilience,
        judgement=judgement,
        validity=valid,
        probes=probe_lanes(run),
        load=run.load_meta,
        stack_events=stack_events(run.journal),
        container_events=container_events(run.journal),
        kubernetes_events=kubernetes_events(run.journal),
        ebpf=ebpf_view(run.journal),
        flamegraphs=[e for e in events(run.journal, "profile") if e["kind"] == "flamegraph"],
    )


def analyze(run_dir: Path) -> Analysis:
    """The analysis of a run directory (see docs/metrics.md); works on partial journals."""
    return analyze_run(load_run(run_dir))
