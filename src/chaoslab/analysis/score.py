"""The resilience score, 0..100 (GUIDE §4).

0 on any lost, unexpected or resurrected write. Otherwise a weighted sum of four parts, each
0..1: availability under fault and recovery, latency ratio (baseline p99 / fault p99, capped at
1), recovery (1 at once, 0 at ``HORIZON`` seconds or never) and detection (the same shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .figures import Figures

WEIGHTS = {"availability": 0.4, "latency": 0.2, "recovery": 0.25, "detection": 0.15}
HORIZON = 60.0


def _decay(seconds: float | None) -> float:
    if seconds is None:
        return 0.0
    return max(0.0, 1.0 - max(0.0, seconds) / HORIZON)


def resilience(metrics: dict[str, Any], impacted: bool) -> tuple[float | None, dict[str, float]]:
    """The score and its parts; None when the run never reached a fault."""
    if any(metrics.get(k) for k in ("lost_writes", "unexpected_writes", "resurrected_writes")):
        return 0.0, {}
    avail = [metrics.get(f"availability.{p}") for p in ("fault", "recovery")]
    if all(a is None for a in avail):  # no load: the probes tell how available the system was
        avail = [v for k, v in metrics.items() if k.startswith("probe.") and k.endswith(
            (".availability.fault", ".availability.recovery"))]
    avail_known = [a for a in avail if a is not None]
    if not avail_known:
        return None, {}
    base, fault = metrics.get("latency.p99.baseline"), metrics.get("latency.p99.fault")
    latency = 1.0 if not base or not fault else min(1.0, base / fault)
    parts = {
        "availability": sum(avail_known) / len(avail_known),
        "latency": latency,
        "recovery": _decay(metrics.get("time_to_recovery")),
        # nothing to detect when nothing was impacted
        "detection": 1.0 if not impacted and metrics.get("detection_time") is None else _decay(metrics.get("detection_time")),
    }
    score = 100.0 * sum(WEIGHTS[k] * v for k, v in parts.items())
    return round(score, 1), {k: round(v, 3) for k, v in parts.items()}


@dataclass(frozen=True)
class Score:
    value: float | None
    """0..100; None when the run never measured availability under a fault."""
    parts: dict[str, float] = field(default_factory=dict)

    def figures(self) -> Figures:
        out = Figures({"resilience_score": self.value})
        if self.value is None:
            out.missing["resilience_score"] = "no availability was measured under fault"
        return out


def score(metrics: dict[str, Any], impacted: bool) -> Score:
    """The score of a run from its other figures (``metrics``)."""
    return Score(*resilience(metrics, impacted))
