"""Prometheus probe: a PromQL instant or range query reduced to one number, judged against
tolerances (a threshold, a range, or a ratio to the value learnt from the first samples).

```yaml
probes:
  order_rate:
    prometheus: {url: http://127.0.0.1:9090, query: "sum(rate(orders_total[1m]))"}
    every: 5s
    expect: {min: 10}
  p95:
    prometheus:
      url: http://127.0.0.1:9090
      query: histogram_quantile(0.95, sum by (le) (rate(order_processing_duration_seconds_bucket[1m])))
      range: 30s          # a range query over the last 30 s ...
      reduce: max         # ... reduced to its maximum
    expect: {max: 0.25, baseline: {samples: 3, max_ratio: 2}}
```
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..units import Duration
from . import register
from .base import Probe, ProbeModel, Sample, Stopwatch

Reduce = Literal["last", "max", "min", "avg", "sum"]


class PrometheusProbeSpec(ProbeModel):
    url: str = Field("http://127.0.0.1:9090", description="Base URL of the Prometheus HTTP API.")
    query: str = Field(..., min_length=1, description="PromQL expression.")
    range: Duration | None = Field(None, description="Query the last RANGE (query_range) instead of now.")
    step: Duration | None = Field(None, description="Resolution of a range query (default: range/30, >= 1s).")
    aggregate: Reduce = Field("sum", description="How several series become one value.")
    reduce: Reduce = Field("max", description="How a range query's points become one value.")
    empty: Literal["fail", "zero"] = Field("fail", description="No series: a failed sample, or the value 0.")
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _range(self) -> PrometheusProbeSpec:
        if self.range is not None and self.range <= 0:
            raise ValueError("range must be greater than 0")
        if self.step is not None and self.range is None:
            raise ValueError("step needs range")
        return self


class BaselineTolerance(BaseModel):
    """Compare with the mean of the first ``samples`` values (taken before the fault)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    samples: int = Field(3, ge=1, le=1000)
    max_ratio: float | None = Field(None, gt=0, description="value <= baseline * max_ratio")
    min_ratio: float | None = Field(None, ge=0, description="value >= baseline * min_ratio")
    max_increase: float | None = Field(None, ge=0, description="value <= baseline + max_increase")
    max_decrease: float | None = Field(None, ge=0, description="value >= baseline - max_decrease")

    @model_validator(mode="after")
    def _some(self) -> BaselineTolerance:
        if all(v is None for v in (self.max_ratio, self.min_ratio, self.max_increase, self.max_decrease)):
            raise ValueError("a baseline tolerance needs max_ratio, min_ratio, max_increase or max_decrease")
        return self


class PrometheusExpect(ProbeModel):
    min: float | None = None
    max: float | None = None
    baseline: BaselineTolerance | None = None
    max_latency: Duration | None = None

    @model_validator(mode="after")
    def _order(self) -> PrometheusExpect:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}")
        return self


def _reduce(values: list[float], how: Reduce) -> float:
    if how == "last":
        return values[-1]
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    if how == "sum":
        return math.fsum(values)
    return math.fsum(values) / len(values)


class QueryError(Exception):
    pass


def value_of(data: dict[str, Any], spec: PrometheusProbeSpec) -> float | None:
    """One number from a Prometheus ``data`` object (vector, matrix or scalar); None when empty.
    NaN points (``histogram_quantile`` without traffic) count as missing."""
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar" and isinstance(result, list):
        v = float(result[1])
        return None if math.isnan(v) else v
    if not isinstance(result, list):
        raise QueryError(f"unexpected result type {kind!r}")
    per_series: list[float] = []
    for series in result:
        if kind == "vector":
            points = [float(series["value"][1])]
        else:
            points = [float(p[1]) for p in series.get("values", [])]
        points = [p for p in points if not math.isnan(p)]
        if points:
            per_series.append(_reduce(points, spec.reduce))
    if not per_series:
        return None
    return _reduce(per_series, spec.aggregate)


@register
class PrometheusProbe(Probe[PrometheusProbeSpec, PrometheusExpect]):
    kind = "prometheus"
    _client: httpx.AsyncClient | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._baseline_values: list[float] = []

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.spec.url.rstrip("/"), timeout=self.timeout,
                                         headers=self.spec.headers)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def query(self) -> float | None:
        assert self._client is not None
        spec = self.spec
        now = time.time()
        if spec.range is None:
            resp = await self._client.get("/api/v1/query", params={"query": spec.query, "time": f"{now:.3f}"})
        else:
            step = spec.step or max(1.0, spec.range / 30)
            resp = await self._client.get("/api/v1/query_range", params={
                "query": spec.query, "start": f"{now - spec.range:.3f}", "end": f"{now:.3f}", "step": f"{step:g}"})
        try:
            body = resp.json()
        except ValueError:
            raise QueryError(f"HTTP {resp.status_code}: not a Prometheus API response") from None
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType', 'error')}: {body.get('error', 'HTTP ' + str(resp.status_code))}")
        return value_of(body.get("data") or {}, spec)

    async def sample(self) -> Sample:
        watch = Stopwatch()
        try:
            value = await self.query()
        except httpx.TimeoutException:
            return Sample(False, None, watch.elapsed(), f"timeout after {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return Sample(False, None, watch.elapsed(), f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except (QueryError, ValueError, KeyError, IndexError, TypeError) as exc:
            return Sample(False, None, watch.elapsed(), f"query failed: {exc}")
        return self.judge(value, watch.elapsed())

    def judge(self, value: float | None, latency: float) -> Sample:
        exp = self.expect
        if value is None:
            if self.spec.empty == "fail":
                return Sample(False, None, latency, "no data (the query returned no series)")
            value = 0.0
        value = round(value, 9)
        if exp.max_latency is not None and latency > exp.max_latency:
            return Sample(False, value, latency, f"query took {latency * 1000:.0f}ms, over {exp.max_latency * 1000:.0f}ms")
        if exp.min is not None and value < exp.min:
            return Sample(False, value, latency, f"{value:g} is below {exp.min:g}")
        if exp.max is not None and value > exp.max:
            return Sample(False, value, latency, f"{value:g} is above {exp.max:g}")
        if exp.baseline is not None:
            return self._judge_baseline(exp.baseline, value, latency)
        return Sample(True, value, latency)

    def _judge_baseline(self, tol: BaselineTolerance, value: float, latency: float) -> Sample:
        if len(self._baseline_values) < tol.samples:
            self._baseline_values.append(value)  # still learning: a baseline sample cannot fail
            return Sample(True, value, latency)
        base = math.fsum(self._baseline_values) / len(self._baseline_values)
        failed = None
        if tol.max_ratio is not None and value > base * tol.max_ratio:
            failed = f"above {tol.max_ratio:g}x"
        elif tol.min_ratio is not None and value < base * tol.min_ratio:
            failed = f"below {tol.min_ratio:g}x"
        elif tol.max_increase is not None and value > base + tol.max_increase:
            failed = f"more than {tol.max_increase:g} above"
        elif tol.max_decrease is not None and value < base - tol.max_decrease:
            failed = f"more than {tol.max_decrease:g} below"
        if failed is not None:
            return Sample(False, value, latency, f"{value:g} is {failed} the baseline {base:g}")
        return Sample(True, value, latency)
