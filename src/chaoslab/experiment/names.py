"""The catalog of hypothesis keys: what a user may assert on, and the did-you-mean for typos.

A key is ``metric`` (whole run) or ``metric.phase`` where a metric is defined per phase, plus
``probe.<name>.<metric>[.phase]`` for every probe. docs/metrics.md is the reference.
"""

from __future__ import annotations

from typing import Any

from ..registry import did_you_mean
from ..units import format_duration

PHASES = ("baseline", "fault", "recovery")

#: Metrics that take an optional ``.phase`` suffix (no suffix = the whole run).
PHASED = (
    "availability",
    "error_rate",
    "fail_rate",
    "timeout_rate",
    "unsent_rate",
    "throughput",
    "latency.p50",
    "latency.p95",
    "latency.p99",
    "latency.max",
)

#: Metrics of the whole run, never per phase.
SCALAR = (
    "time_to_recovery",
    "time_to_recovery.from_impact",
    "time_to_recovery.exact",
    "impact_onset",
    "impact_onset.exact",
    "detection_time",
    "lost_writes",
    "unexpected_writes",
    "recovered_writes",
    "resurrected_writes",
    "duplicates",
    "resilience_score",
    "generator_lag.p99",
    "poison_stored_as_valid",
    "poison_lost",
    "poison_rejected",
    "poison_dead_lettered",
)

#: Counts of what the system holds, read after the run: a load generator that fell behind sent
#: late, which spoils rates, latencies and windows, but a write it got acknowledged and the system
#: then lost is lost all the same. A failed line on one of these is a violation even when the
#: run is otherwise invalid.
LAG_PROOF = ("lost_writes", "unexpected_writes", "recovered_writes", "resurrected_writes", "duplicates",
             "poison_stored_as_valid", "poison_lost", "poison_rejected", "poison_dead_lettered")


def survives_lag(name: str) -> bool:
    """Whether a hypothesis key is judged the same when the load generator fell behind."""
    return name in LAG_PROOF or name.startswith("invariant.")


#: Per-probe metrics (``probe.<name>.<metric>[.phase]``).
PROBE_PHASED = ("availability", "failures", "latency.p99", "value.min", "value.max", "value.avg")


def metric_names(probes: list[str]) -> list[str]:
    """Every valid hypothesis key for an experiment with these probes."""
    names = list(SCALAR)
    for metric in PHASED:
        names.append(metric)
        names.extend(f"{metric}.{phase}" for phase in PHASES)
    for probe in probes:
        for metric in PROBE_PHASED:
            names.append(f"probe.{probe}.{metric}")
            names.extend(f"probe.{probe}.{metric}.{phase}" for phase in PHASES)
    return names


#: Keys measured from the load's history, and from the final read.
_NEEDS_LOAD = (*PHASED, "generator_lag.p99")
_NEEDS_VERIFY = ("lost_writes", "unexpected_writes", "recovered_writes", "resurrected_writes", "duplicates",
                 "poison_stored_as_valid", "poison_lost", "poison_dead_lettered")


def validate_metric_name(
    name: str, probes: list[str], *, has_load: bool | None = None, has_verify: bool | None = None,
    invariants: list[str] | None = None,
) -> None:
    """Raise ``ValueError`` (one line, with a suggestion) when ``name`` is not a hypothesis key.

    With ``has_load``/``has_verify`` given, a key that could never be measured by this
    experiment (``error_rate`` without ``load:``, ``lost_writes`` without ``verify:``) is an
    error too, rather than a violation discovered after the run.
    """
    if name.startswith("invariant.") and invariants is not None:
        if name[len("invariant."):] in invariants:
            return
        known = ", ".join(invariants) or "none"
        raise ValueError(f"hypothesis key {name!r} names no query of verify.invariants (known: {known})")
    names = metric_names(probes)
    if name in names:
        base = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1] in PHASES else name
        if has_load is False and base in _NEEDS_LOAD:
            raise ValueError(f"hypothesis key {name!r} is measured on the load, but the experiment has no load:")
        if has_verify is False and name in _NEEDS_VERIFY:
            raise ValueError(f"hypothesis key {name!r} needs a verify: step (the final read of what the system holds)")
        return
    close = did_you_mean(name, names)
    hint = f"; {close}" if close else ""
    if name.startswith("probe.") and name.split(".")[1:2] and name.split(".")[1] not in probes:
        known = ", ".join(probes) or "none"
        raise ValueError(f"unknown probe {name.split('.')[1]!r} in hypothesis key {name!r} (probes: {known}){hint}")
    raise ValueError(f"unknown hypothesis key {name!r}{hint} (see docs/metrics.md)")


_RATIOS = ("availability", "error_rate", "fail_rate", "timeout_rate", "unsent_rate")
_DURATIONS = ("time_to_recovery", "impact_onset", "detection_time", "latency", "generator_lag")


def unit(name: str) -> str:
    """The unit of a metric: ``ratio`` (0..1), ``seconds``, ``per_second``, ``score`` or ``count``."""
    leaf = name.split(".", 2)[2] if name.startswith("probe.") and name.count(".") >= 2 else name
    if leaf.startswith(_RATIOS):
        return "ratio"
    if leaf.startswith(_DURATIONS):
        return "seconds"
    if leaf.startswith("throughput"):
        return "per_second"
    if leaf == "resilience_score":
        return "score"
    return "count"


def format_value(name: str, v: Any) -> str:
    """A metric value the way a person reads it: ``99.50%``, ``1.2s``, ``850ms``, ``200.0/s``."""
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    kind = unit(name)
    if kind == "ratio":
        return f"{v * 100:.2f}%"
    if kind == "seconds":
        return format_duration(float(v))
    if kind == "per_second":
        return f"{v:.1f}/s"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4g}"
    return str(int(v))
