"""The experiment's measuring side: load (``load:``), final read (``verify:``) and ``hypothesis:``.

Owned by the load/analysis area; the experiment model only embeds these classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..units import Duration, Rate
from .poison import PoisonSpec


def _check_path(path: str | None) -> str | None:
    """Reject a malformed JSON path when the file is loaded, not mid-run."""
    if path is not None:
        from .. import jsonpath

        jsonpath.parse(path.replace("[*]", ""))
    return path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


HttpStatus = Annotated[int, Field(ge=100, le=599)]


class AckRule(_Strict):
    """Which responses acknowledge a write, and where the written id is."""

    status: list[HttpStatus] = Field(default_factory=lambda: [200, 201])
    id: str | None = Field(None, description="JSON path of the acknowledged id, e.g. $.order_id")
    indeterminate: list[HttpStatus] = Field(
        default_factory=lambda: [502, 504],
        description="Failure statuses that do not prove the write was not applied (a gateway gave up waiting).",
    )

    _path = field_validator("id")(classmethod(lambda cls, v: _check_path(v)))


class _OpenModel(_Strict):
    """Open-model pacing shared by every workload: operation k is due at t0 + k/rate."""

    rate: Rate = 50.0
    ramp: Duration = Field(0.0, description="Rise linearly from 0 to rate over this long.")
    timeout: Duration = 2.0
    concurrency: int = Field(256, ge=1, le=100_000, description="Operations in flight at most; more are unsent (failed).")
    max_lag: Duration = Field(0.1, description="Generator lag p99 above which the run is invalid.")


class HttpLoad(_OpenModel):
    """HTTP requests; url and body are templates ({{seq}}, {{key}}, {{uuid}}, {{run}})."""

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    ack: AckRule | None = None
    connections: int = Field(
        64, ge=1, le=10_000, description="Keep-alive connections at most; requests beyond wait for one (counted in latency)."
    )
    poison: PoisonSpec | None = Field(None, description="Mix malformed payloads into the load (docs/poison.md).")
    retry_acked: float | None = Field(
        None, gt=0, le=1,
        description="This share of operations re-sends the request of an already acknowledged one (same body, "
        "same key); an answer naming another id than the original ack.id is recorded as a new acknowledged write "
        "(error says so), which the final read then finds lost or stored twice.",
    )

    @model_validator(mode="after")
    def _poison_needs_json(self) -> HttpLoad:
        if self.poison is not None and not isinstance(self.body, dict):
            raise ValueError("poison needs a JSON object body (its defects are made on its fields)")
        if self.retry_acked is not None and (self.ack is None or self.ack.id is None):
            raise ValueError("retry_acked needs ack.id (the id a retry's answer must repeat)")
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"invalid URL {v!r} (expected http://host:port/path or https://...)")
        return v


class PythonLoad(_OpenModel):
    """A user callable ``module:function`` driving a non-HTTP system with the same history."""

    python: str = Field(..., pattern=r"^[\w.]+:[\w]+$")
    args: dict[str, Any] = Field(default_factory=dict)


class LoadSpec(_Strict):
    http: HttpLoad | None = None
    python: PythonLoad | None = None
    workers: int | None = Field(
        None, ge=1, le=256,
        description="Processes sharing the schedule (worker i of N sends operations k = i mod N). Default: the "
        "cores the machine can spare, max(1, usable cores - 1), for http; 1 for python (a user's function may "
        "keep state in the runner's process). See docs/experiment-format.md.",
    )

    @model_validator(mode="after")
    def _one(self) -> LoadSpec:
        if (self.http is None) == (self.python is None):
            raise ValueError("load needs exactly one of http, python")
        work = self.workload
        if self.workers is not None and self.workers > work.concurrency:
            raise ValueError(f"workers ({self.workers}) must be at most concurrency ({work.concurrency}): "
                             "each worker keeps its share of the operations in flight")
        if self.workers is not None and self.http is not None and self.workers > self.http.connections:
            raise ValueError(f"workers ({self.workers}) must be at most http.connections ({self.http.connections}): "
                             "each worker opens its own share of the connections")
        return self

    @property
    def workload(self) -> HttpLoad | PythonLoad:
        return self.http if self.http is not None else self.python  # type: ignore[return-value]


class SqlRead(_Strict):
    dsn: str
    query: str


class HttpRead(_Strict):
    """A list endpoint (``ids``: JSON path such as ``$.orders[*].id``; absent: the body is the list),
    or, when ``url`` contains ``{{id}}``, one GET per attempted write (200 = present, 404 = absent)."""

    url: str
    ids: str | None = Field(None, description="JSON path of the id list in the response, e.g. $.orders[*].id")
    headers: dict[str, str] = Field(default_factory=dict)

    _path = field_validator("ids")(classmethod(lambda cls, v: _check_path(v)))


class VerifySpec(_Strict):
    """The final read of what the system holds, retried until ``deadline``."""

    sql: SqlRead | None = None
    http: HttpRead | None = None
    python: str | None = Field(None, pattern=r"^[\w.]+:[\w]+$")
    deadline: Duration = 30.0
    dead_letters: SqlRead | None = Field(
        None, description="The ids the system set aside as malformed (its dead-letter store); read after the final read."
    )
    invariants: dict[Annotated[str, StringConstraints(pattern=r"^\w+$")], SqlRead] = Field(
        default_factory=dict,
        description="Named queries that return the rows breaking an invariant (none when it holds); "
        "read after the final read, each row a violation, counted as hypothesis key invariant.<name>.",
    )

    @model_validator(mode="after")
    def _one(self) -> VerifySpec:
        if sum(x is not None for x in (self.sql, self.http, self.python)) != 1:
            raise ValueError("verify needs exactly one of sql, http, python")
        return self


def _number_or_duration(v: Any) -> Any:
    from ..units import parse_duration, shown

    if not isinstance(v, str):
        if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) > BOUND_LIMIT:
            raise ValueError(f"a bound is at most {BOUND_LIMIT:g} in size")
        return v
    try:
        return parse_duration(v)
    except ValueError:
        raise ValueError(f"expected a number, or a duration such as 30s for a time metric (got {shown(v)})") from None


BOUND_LIMIT = 2.0**53
"""The loader's own limit on any number; a bound beyond it could never decide anything."""

BoundValue = Annotated[
    float,
    BeforeValidator(_number_or_duration),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": -BOUND_LIMIT, "maximum": BOUND_LIMIT},
                              {"type": "string", "examples": ["30s", "250ms"]}]}),
]
"""A number, or a duration (``30s``, ``250ms``) for time metrics."""


class Bound(_Strict):
    """An assertion on one measured value."""

    max: BoundValue | None = None
    min: BoundValue | None = None
    equals: Any = None

    @model_validator(mode="after")
    def _some(self) -> Bound:
        if self.max is None and self.min is None and self.equals is None:
            raise ValueError("a bound needs max, min or equals")
        return self
