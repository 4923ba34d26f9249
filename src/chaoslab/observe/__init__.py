"""Watching a run without influencing it: the Prometheus exporter, eBPF tracing and flamegraphs.

``from_experiment(exp.observe)`` builds the observers an experiment's ``observe:`` section asks
for; the runner starts them before the baseline and skips (with the reason in the journal) any
whose ``start`` raises, e.g. eBPF without root, bpftrace or tracefs.
"""

from __future__ import annotations

from typing import Any

from .observer import Observer, ObserverContext
from .spec import TRACERS, ObserveSpec, ProfileSpec, parse_observe


def from_experiment(observe: dict[str, Any]) -> list[Observer]:
    """Observers for an ``observe:`` mapping; ``ValueError`` (one line) when it is invalid."""
    spec = parse_observe(observe)
    observers: list[Observer] = []
    # The tracers load on demand: most runs observe nothing and start-up stays fast.
    if spec.ebpf:
        from .ebpf import EbpfTracer

        observers.append(EbpfTracer(list(spec.ebpf)))
    if spec.profile is not None:
        from .profile import PhaseProfiler

        observers.append(PhaseProfiler(spec.profile))
    return observers


__all__ = ["TRACERS", "ObserveSpec", "Observer", "ObserverContext", "ProfileSpec", "from_experiment", "parse_observe"]
