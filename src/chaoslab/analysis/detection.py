"""Detection: the first signal from the system itself that something is wrong (docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from .figures import Figures
from .rundata import RunData

#: Stack events that are the platform noticing trouble (docs/metrics.md, detection time).
_STACK_SIGNALS = frozenset({"exit", "gave_up"})


@dataclass(frozen=True)
class Detection:
    time: float | None
    """Seconds from the injection to the first signal; None when nothing signalled it."""
    by: str | None
    """What signalled it, in words."""

    def figures(self, injected: bool) -> Figures:
        out = Figures({"detection_time": self.time})
        if self.time is None:
            out.missing["detection_time"] = "undetected" if injected else "no fault was injected"
        return out


def _is_signal_event(rec: dict[str, Any]) -> bool:
    if rec.get("detect"):
        return True
    if rec.get("source") != "stack":
        return False
    kind = rec.get("kind")
    return kind in _STACK_SIGNALS or (kind == "health" and rec.get("status") not in ("healthy", "starting", None))


def detect(run: RunData) -> Detection:
    """First signal from the system itself after t_inject: a failing signal probe or a signal event.

    A probe already failing at the end of the baseline says nothing about this fault. What the
    probe said at the injection is its last sample whose answer came *before* it: a sample is
    stamped with its start, and one sent just before the injection that times out under the
    fault (a pause caught it in flight) is the fault's first signal, at the moment its failure
    was known, not a probe that was failing already.
    """
    t_inject = run.phases.t_inject
    if t_inject is None:
        return Detection(None, None)
    last_ok: dict[str, bool] = {}
    first: tuple[float, str] | None = None  # (when, what) of the earliest signal
    for rec in run.journal:
        t = float(rec["t"])
        if t > run.phases.t_end:
            continue
        at: float | None = None
        by = ""
        if rec["type"] == "sample":
            name = rec["probe"]
            probe = run.probes.get(name)
            known = t + float(rec.get("latency") or 0.0)  # when its answer (or its timeout) came
            if t < t_inject and known <= t_inject:
                last_ok[name] = bool(rec.get("ok"))
            elif not rec.get("ok") and probe is not None and probe.signal and last_ok.get(name, True):
                at = t if t >= t_inject else known
                by = f"probe {name} failed" + (f" ({rec['error']})" if rec.get("error") else "")
        elif rec["type"] == "event" and t >= t_inject:
            event = cast(dict[str, Any], rec)  # an event carries what its source observed
            if _is_signal_event(event):
                at = t
                by = f"{event.get('source', 'event')}: {event.get('message') or event.get('kind', 'signal')}"
        if at is not None and (first is None or at < first[0]):
            first = (at, by)
    return Detection(first[0] - t_inject, first[1]) if first else Detection(None, None)
