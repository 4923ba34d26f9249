"""``analyze(run_dir)``: phases, windows, metrics, data loss, score and verdict of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from ..records import SampleRecord, events
from . import cost, dataloss, hypothesis, instants, poison, score, windows
from .containerevents import container_events
from .ebpf import ebpf_findings, ebpf_series, phase_counts
from .findings import findings
from .latency import percentiles
from .names import PHASES, survives_lag
from .phases import Phases, fault_intervals
from .rundata import Probe, RunData, load_run
from .stackevents import stack_events

#: Generator lag above which a run is invalid, unless the load header says otherwise.
DEFAULT_MAX_LAG = 0.1


def _load_metrics(ops: list[dict[str, Any]], phases: Phases, has_load: bool) -> dict[str, Any]:
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


def _probe_metrics(run: RunData) -> tuple[dict[str, Any], dict[str, list[list[Any]]]]:
    metrics: dict[str, Any] = {}
    lanes: dict[str, list[list[Any]]] = {}
    for name in run.probes:
        samples = [s for s in run.samples if s.get("probe") == name]
        lanes[name] = [[s["t"], bool(s.get("ok")), s.get("error")] for s in samples]
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
    return metrics, lanes


def phase_metrics(ops: list[dict[str, Any]], samples: list[SampleRecord], probes: list[str], phases: Phases,
                  has_load: bool) -> dict[str, Any]:
    """The per-phase rates, latencies and probe figures ``analyze`` computes, from the operations
    and samples given (the runner judges a phase's hypotheses on what it recorded so far)."""
    run = RunData(run_dir=Path(), experiment={}, journal=list(samples), phases=phases, load_meta=None, ops=ops,
                  verify=None, probes={name: Probe(name) for name in probes})
    metrics = _load_metrics(ops, phases, has_load)
    metrics.update(_probe_metrics(run)[0])
    return metrics


#: Stack events that are the platform noticing trouble (docs/metrics.md, detection time).
_STACK_SIGNALS = frozenset({"exit", "gave_up"})


def _is_signal_event(rec: dict[str, Any]) -> bool:
    if rec.get("detect"):
        return True
    if rec.get("source") != "stack":
        return False
    kind = rec.get("kind")
    return kind in _STACK_SIGNALS or (kind == "health" and rec.get("status") not in ("healthy", "starting", None))


def _detection(run: RunData) -> tuple[float | None, str | None]:
    """First signal from the system itself after t_inject: a failing signal probe or a signal event.

    A probe already failing at the end of the baseline says nothing about this fault.
    """
    t_inject = run.phases.t_inject
    if t_inject is None:
        return None, None
    last_ok: dict[str, bool] = {}
    for rec in run.journal:
        t = float(rec["t"])
        if t > run.phases.t_end:
            continue
        if rec["type"] == "sample":
            name = rec["probe"]
            probe = run.probes.get(name)
            if t < t_inject:
                last_ok[name] = bool(rec.get("ok"))
            elif not rec.get("ok") and probe is not None and probe.signal and last_ok.get(name, True):
                return t - t_inject, f"probe {name} failed" + (f" ({rec['error']})" if rec.get("error") else "")
        elif rec["type"] == "event" and t >= t_inject:
            event = cast(dict[str, Any], rec)  # an event carries what its source observed
            if _is_signal_event(event):
                what = event.get("message") or f"{event.get('kind', 'signal')}"
                return t - t_inject, f"{event.get('source', 'event')}: {what}"
    return None, None


def _recovery_metrics(metrics: dict[str, Any], missing: dict[str, str], rec: windows.Recovery,
                      exact: instants.Instants, ph: Phases) -> None:
    """Impact onset and time to recovery by the window rule, and the same located exactly."""
    assert ph.t_inject is not None
    onset = max(rec.impact_onset or 0.0, ph.t_inject)
    metrics["impact_onset"] = onset - ph.t_inject
    if exact.impact_onset is not None:
        metrics["impact_onset.exact"] = max(0.0, exact.impact_onset - ph.t_inject)
    if rec.recovered_at is None:
        why = "not recovered by the end of the run" if ph.complete else "the run ended (crashed) before recovery"
        for k in ("time_to_recovery", "time_to_recovery.from_impact", "time_to_recovery.exact"):
            missing[k] = why
    elif ph.t_revert is None:
        metrics["time_to_recovery.from_impact"] = rec.recovered_at - onset
        missing["time_to_recovery"] = missing["time_to_recovery.exact"] = "the fault was never reverted"
    else:
        metrics["time_to_recovery"] = max(0.0, rec.recovered_at - ph.t_revert)
        metrics["time_to_recovery.from_impact"] = max(0.0, rec.recovered_at - onset)
        if exact.recovered_at is not None:
            metrics["time_to_recovery.exact"] = max(0.0, exact.recovered_at - ph.t_revert)


def _lag(run: RunData) -> tuple[float | None, float]:
    lags = [
        float(op["t_sent"]) - float(op["t_scheduled"])
        for op in run.ops
        if op.get("t_sent") is not None
    ]
    limit = float((run.load_meta or {}).get("max_lag") or DEFAULT_MAX_LAG)
    return (percentiles(lags)["p99"] if lags else None), limit


def analyze(run_dir: Path) -> dict[str, Any]:
    """The analysis of a run directory (see docs/metrics.md); works on partial journals."""
    run = load_run(run_dir)
    ph = run.phases
    missing: dict[str, str] = {}
    metrics = _load_metrics(run.ops, ph, run.has_load)
    if not run.has_load:
        for key in list(metrics):
            if key.split(".")[0] in ("availability", "error_rate", "fail_rate", "timeout_rate", "unsent_rate", "throughput", "latency"):
                missing[key] = "the experiment has no load"
    else:
        for key, v in list(metrics.items()):
            if v is None:
                phase = key.rsplit(".", 1)[-1]
                scope = f"the {phase} phase" if phase in PHASES else "this run"
                what = "successful operation" if key.startswith("latency") else "operation scheduled"
                missing[key] = f"no {what} in {scope}"
    probe_metrics, lanes = _probe_metrics(run)
    metrics.update(probe_metrics)
    sent = [float(op["t_sent"]) for op in run.ops if op.get("t_sent") is not None]
    metrics.update(cost.metrics(run.journal, {p: metrics[f"operations.{p}"] for p in PHASES},
                                min(sent) if sent else None))

    # windows, steady state and recovery
    if run.ops:
        wins = windows.op_windows(run.ops, ph.t_end)
        tol = windows.learn_tolerance(metrics.get("availability.baseline"), metrics.get("latency.p99.baseline"))
        basis = "load"
    else:
        samples = run.samples
        wins = windows.sample_windows(samples, ph.t_end)
        base = [s for s in samples if ph.of(float(s["t"])) == "baseline"]
        tol = windows.learn_tolerance(sum(bool(s.get("ok")) for s in base) / len(base) if base else None, None)
        basis = "probes"
    windows.judge(wins, tol)
    rec = None
    recovery_keys = ("time_to_recovery", "time_to_recovery.from_impact", "impact_onset",
                     "time_to_recovery.exact", "impact_onset.exact")
    metrics.update(dict.fromkeys(recovery_keys))
    if ph.t_inject is None:
        for k in recovery_keys:
            missing[k] = "no fault was injected"
    elif not any(w.n for w in wins):
        for k in recovery_keys:
            missing[k] = "nothing was measured (no load and no probe samples)"
    else:
        rec = windows.recovery(wins, ph.t_inject, t_revert=ph.t_revert)
        if not rec.impacted:
            for k in ("time_to_recovery", "time_to_recovery.from_impact", "time_to_recovery.exact"):
                metrics[k] = 0.0
            missing["impact_onset"] = missing["impact_onset.exact"] = "no impact was measured"
        else:  # only an impact has instants to locate: the points are built for it alone
            points = instants.op_points(run.ops, tol) if run.ops else instants.sample_points(run.samples)
            _recovery_metrics(metrics, missing, rec, instants.exact(points, tol, ph.t_inject, rec, ph.t_end), ph)

    detection, detected_by = _detection(run)
    metrics["detection_time"] = detection
    if detection is None:
        missing["detection_time"] = "undetected" if ph.t_inject is not None else "no fault was injected"

    clean_ops, clean_verify = poison.clean_view(run.ops, run.verify)
    loss = dataloss.check(clean_ops, clean_verify, run.wants_verify)
    metrics.update(loss.counts())
    poisoning = poison.check(run.ops, run.verify)
    poison.note_stall(poisoning, metrics.get("lost_writes"))
    metrics.update(poison.metrics(poisoning, missing))
    for key in ("lost_writes", "unexpected_writes", "recovered_writes", "resurrected_writes", "duplicates"):
        if metrics[key] is None:
            missing[key] = f"data loss {loss.status.upper().replace('_', ' ')}: {loss.reason}"

    for name, inv in ((run.verify or {}).get("invariants") or {}).items():
        metrics[f"invariant.{name}"] = inv.get("violations")
        if inv.get("violations") is None:
            missing[f"invariant.{name}"] = "the invariant query could not be read: " + str(inv.get("error"))
    for name in run.hypothesis:
        if name.startswith("invariant.") and name not in metrics:
            missing[name] = "no invariant read (the run has no verify.json or no such query)"

    lag_p99, max_lag = _lag(run)
    metrics["generator_lag.p99"] = lag_p99
    if lag_p99 is None:
        missing["generator_lag.p99"] = "the experiment has no load"
    valid = lag_p99 is None or lag_p99 <= max_lag
    invalid_reason = None if valid else (
        f"the load generator fell behind: lag p99 {lag_p99 * 1000:.0f} ms > {max_lag * 1000:.0f} ms "  # type: ignore[operator]
        "(the machine was too busy to send at the requested rate; numbers would be wrong)"
    )

    impacted = bool(rec and rec.impacted)
    metrics["resilience_score"], score_parts = score.resilience(metrics, impacted)
    if metrics["resilience_score"] is None:
        missing["resilience_score"] = "no availability was measured under fault"

    verdict = [
        hypothesis.judge(name, metrics.get(name), dict(bound), missing.get(name))
        for name, bound in run.hypothesis.items()
    ]
    held: bool | None = all(v["passed"] for v in verdict) if verdict else None
    if not valid:  # nothing can be cleared on late load, but lost or poisoned data is still found
        held = False if any(not v["passed"] and v["value"] is not None and survives_lag(v["name"])
                            for v in verdict) else None

    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "title": run.experiment.get("title"),
        "description": run.experiment.get("description"),
        "phases": ph.to_dict(),
        "faults": fault_intervals(run.journal, ph.t_end),
        "outcome": None,  # the verdict's, set by chaoslab.verdict.conclude (it needs this analysis)
        "aborts": [r for r in run.journal if r["type"] == "stop" or r["type"] == "abort"],
        "metrics": metrics,
        "missing": missing,
        "detected_by": detected_by,
        "steady_state": {**tol.to_dict(), "basis": basis, "recovered_after": windows.RECOVERED_AFTER},
        "impacted": impacted,
        "data_loss": loss.to_dict(),
        "poison": poisoning,
        "score_parts": score_parts,
        "hypothesis": verdict,
        "held": held,
        "valid": valid,
        "invalid_reason": invalid_reason,
        "windows": [w.to_dict() for w in wins],
        "probes": lanes,
        "load": run.load_meta,
    }
    result["stack_events"] = stack_events(run.journal)
    result["container_events"] = container_events(run.journal)
    if events(run.journal, "ebpf"):
        result["ebpf"] = {
            "findings": ebpf_findings(run.journal),
            "series": ebpf_series(run.journal),
            "by_phase": phase_counts(run.journal),
        }
    result["flamegraphs"] = [e for e in events(run.journal, "profile") if e["kind"] == "flamegraph"]
    result["findings"] = findings(result)
    return result
