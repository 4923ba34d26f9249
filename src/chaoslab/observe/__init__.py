"""Watching a run without influencing it: the Prometheus exporter, eBPF tracing and flamegraphs.

``from_experiment(exp.observe)`` builds the observers an experiment's ``observe:`` section asks
for; the runner starts them before the baseline and skips (with the reason in the journal) any
whose ``start`` raises, e.g. eBPF without root, bpftrace or tracefs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..registry import Registry
from .observer import Observer, ObserverContext
from .spec import TRACERS, ObserveSpec, ProfileSpec, parse_observe

# Key of the ``observe:`` section -> the observer built from its value. Named lazily: most runs
# observe nothing, and the tracers' modules load only when a run asks for them.
OBSERVERS: Registry[Callable[[Any], Observer]] = Registry("observer")
OBSERVERS.lazy("ebpf", "chaoslab.observe.ebpf:EbpfTracer")
OBSERVERS.lazy("profile", "chaoslab.observe.profile:PhaseProfiler")


def from_experiment(observe: dict[str, Any]) -> list[Observer]:
    """Observers for an ``observe:`` mapping; ``ValueError`` (one line) when it is invalid."""
    spec = parse_observe(observe)
    observers: list[Observer] = []
    for key in OBSERVERS.names():
        section = getattr(spec, key)
        if section:  # an empty tracer list, or no profile: nothing to observe
            observers.append(OBSERVERS.get(key)(section))
    return observers


__all__ = [
    "OBSERVERS", "TRACERS", "ObserveSpec", "Observer", "ObserverContext", "ProfileSpec", "from_experiment",
    "parse_observe",
]
