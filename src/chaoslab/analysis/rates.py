"""Rates, latencies and probe figures per phase and over the whole run (docs/metrics.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..experiment.names import PHASES
from ..records import SampleRecord
from .figures import Figures
from .latency import percentiles
from .phases import Phases
from .rundata import Probe, RunData

#: The metric families the load measures (absent, with a reason, when there is no load).
LOAD_FAMILIES = ("availability", "error_rate", "fail_rate", "timeout_rate", "unsent_rate", "throughput", "latency")


def _load_values(ops: list[dict[str, Any]], phases: Phases, has_load: bool) -> dict[str, Any]:
    """availability/error/timeout/unsent rates, throughput and latency, per phase and overall."""
    groups: dict[str, list[dict[str, Any]]] = {"": [], **{p: [] for p in PHASES}}
    for op in ops:
        if op.get("cut"):
            continue
        groups[""].append(op)
        groups[phases.of(float(op["t_scheduled"]))].append(op)
    out: dict[str, Any] = {}
    for phase, group in groups.items():
        sfx = f".{phase}" if phase else ""
        n = len(group)
        ok = sum(1 for op in group if op.get("outcome") == "ok")
        timeout = sum(1 for op in group if op.get("outcome") == "timeout")
        unsent = sum(1 for op in group if op.get("outcome") != "ok" and op.get("t_sent") is None)
        fail = n - ok - timeout - unsent
        bounds = phases.bounds(phase) if phase else (0.0, phases.t_end)
        span = (bounds[1] - bounds[0]) if bounds else 0.0
        measured = has_load and n > 0
        out[f"availability{sfx}"] = ok / n if measured else None
        out[f"error_rate{sfx}"] = 1 - ok / n if measured else None
        out[f"fail_rate{sfx}"] = fail / n if measured else None
        out[f"timeout_rate{sfx}"] = timeout / n if measured else None
        out[f"unsent_rate{sfx}"] = unsent / n if measured else None
        out[f"throughput{sfx}"] = ok / span if measured and span > 0 else None
        out[f"operations{sfx}"] = n
        pct = percentiles(float(op["latency"]) for op in group if op.get("outcome") == "ok" and op.get("latency") is not None)
        for k, v in pct.items():
            out[f"latency.{k}{sfx}"] = v
    return out


def load_figures(run: RunData) -> Figures:
    """The load's figures, and why each one that is None could not be measured."""
    values = _load_values(run.ops, run.phases, run.has_load)
    missing: dict[str, str] = {}
    for key, v in values.items():
        if not run.has_load:
            if key.split(".")[0] in LOAD_FAMILIES:
                missing[key] = "the experiment has no load"
        elif v is None:
            phase = key.rsplit(".", 1)[-1]
            scope = f"the {phase} phase" if phase in PHASES else "this run"
            what = "successful operation" if key.startswith("latency") else "operation scheduled"
            missing[key] = f"no {what} in {scope}"
    return Figures(values, missing)


def probe_figures(run: RunData) -> Figures:
    """Each probe's availability, failures, p99 latency and value bounds, per phase and overall."""
    metrics: dict[str, Any] = {}
    for name in run.probes:
        samples = run.samples_of(name)
        groups: dict[str, list[SampleRecord]] = {"": samples, **{p: [] for p in PHASES}}
        for s in samples:
            groups[run.phases.of(float(s["t"]))].append(s)
        for phase, group in groups.items():
            sfx = f".{phase}" if phase else ""
            n = len(group)
            ok = sum(1 for s in group if s.get("ok"))
            metrics[f"probe.{name}.availability{sfx}"] = ok / n if n else None
            metrics[f"probe.{name}.failures{sfx}"] = n - ok
            lat = [latency for s in group if (latency := s.get("latency")) is not None]
            metrics[f"probe.{name}.latency.p99{sfx}"] = percentiles(lat)["p99"] if lat else None
            # numeric sample values (a PromQL result, a status code): for bounds on what was read
            values = [float(s["value"]) for s in group
                      if isinstance(s.get("value"), int | float) and not isinstance(s.get("value"), bool)]
            metrics[f"probe.{name}.value.min{sfx}"] = min(values) if values else None
            metrics[f"probe.{name}.value.max{sfx}"] = max(values) if values else None
            metrics[f"probe.{name}.value.avg{sfx}"] = sum(values) / len(values) if values else None
    return Figures(metrics)


def probe_lanes(run: RunData) -> dict[str, list[list[Any]]]:
    """Each probe's samples as ``[t, ok, error]``, for the report's lanes."""
    return {name: [[s["t"], bool(s.get("ok")), s.get("error")] for s in run.samples_of(name)] for name in run.probes}


def phase_metrics(ops: list[dict[str, Any]], samples: list[SampleRecord], probes: list[str], phases: Phases,
                  has_load: bool) -> dict[str, Any]:
    """The per-phase rates, latencies and probe figures the analysis computes, from the operations
    and samples given (the runner judges a phase's hypotheses on what it recorded so far)."""
    run = RunData(run_dir=Path(), experiment={}, journal=list(samples), phases=phases, load_meta=None, ops=ops,
                  verify=None, probes={name: Probe(name) for name in probes})
    return {**_load_values(ops, phases, has_load), **probe_figures(run).values}
