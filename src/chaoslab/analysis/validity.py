"""Whether a run's numbers can be trusted: the load generator kept to its schedule."""

from __future__ import annotations

from dataclasses import dataclass

from .figures import Figures
from .latency import percentiles
from .rundata import RunData

#: Generator lag above which a run is invalid, unless the load header says otherwise.
DEFAULT_MAX_LAG = 0.1


@dataclass(frozen=True)
class Validity:
    lag_p99: float | None
    """p99 of sent minus due time over the run's operations; None without load."""
    max_lag: float

    @property
    def valid(self) -> bool:
        return self.lag_p99 is None or self.lag_p99 <= self.max_lag

    @property
    def invalid_reason(self) -> str | None:
        if self.lag_p99 is None or self.valid:
            return None
        return (f"the load generator fell behind: lag p99 {self.lag_p99 * 1000:.0f} ms > {self.max_lag * 1000:.0f} ms "
                "(the machine was too busy to send at the requested rate; numbers would be wrong)")

    def figures(self) -> Figures:
        out = Figures({"generator_lag.p99": self.lag_p99})
        if self.lag_p99 is None:
            out.missing["generator_lag.p99"] = "the experiment has no load"
        return out


def validity(run: RunData) -> Validity:
    lags = [float(op["t_sent"]) - float(op["t_scheduled"]) for op in run.ops if op.get("t_sent") is not None]
    limit = float((run.load_meta or {}).get("max_lag") or DEFAULT_MAX_LAG)
    return Validity(percentiles(lags)["p99"] if lags else None, limit)
