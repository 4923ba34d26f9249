"""The experiment file, modelled with pydantic v2 (see docs/experiment-format.md).

Fault parameters are written inline in a step (``{fault: process.pause, target: db,
duration: 5s}`` plus the fault's own keys) and validated against that fault's ``Params``
model in a second pass by the loader, so each fault keeps its parameters in its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from ..probes import KINDS as PROBE_KINDS
from ..probes.http import HttpProbeSpec
from ..targets import TargetSpec
from ..units import Duration
from .workload import Bound, LoadSpec, VerifySpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- probes --------------------------------------------------------------------------------

class ProbeSpecBase(_Strict):
    """One probe: exactly one kind, sampled every ``every`` through the whole run."""

    every: Duration = 1.0
    timeout: Duration = 1.0
    expect: dict[str, Any] = Field(default_factory=dict, description="Kind-specific expectations.")
    signal: bool = Field(
        True, description="Failures of this probe count as the system detecting the fault (detection time)."
    )

    @model_validator(mode="after")
    def _one(self) -> ProbeSpecBase:
        kinds = [k for k in PROBE_KINDS.names() if getattr(self, k) is not None]
        if len(kinds) != 1:
            known = ", ".join(PROBE_KINDS.names())
            raise ValueError(f"a probe needs exactly one of {known} (got {', '.join(kinds) or 'none'})")
        if self.every <= 0:
            raise ValueError("every must be greater than 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in PROBE_KINDS.names() if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        """What the probe's own key holds (an instance of its kind's ``Spec``)."""
        return getattr(self, self.kind)


def _optional(spec: Any) -> tuple[Any, None]:
    """``spec | None = None``; an annotated spec (``python``'s pattern) keeps its constraints."""
    if get_origin(spec) is Annotated:
        base, *meta = get_args(spec)
        annotated: Any = Annotated
        return annotated[(base | None, *meta)], None
    return spec | None, None


# One optional key per registered probe kind, so a kind's spec lives in its own module
# (probes/<kind>.py) and adding a kind touches nothing here. The type checker sees the keys
# every probe has; a kind's own key is read through ``spec`` (typed by its probe class).
if TYPE_CHECKING:
    ProbeSpec = ProbeSpecBase
else:
    ProbeSpec = create_model(
        "ProbeSpec",
        __base__=ProbeSpecBase,
        __doc__=ProbeSpecBase.__doc__,
        __module__=__name__,
        **{kind: _optional(PROBE_KINDS.get(kind).Spec) for kind in PROBE_KINDS.names()},
    )


# --- method --------------------------------------------------------------------------------

class Step(BaseModel):
    """A fault at an offset of the timeline; the fault's own parameters are inline."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    fault: str
    target: str | None = None
    at: Duration = 0.0
    duration: Duration | None = Field(None, description="How long the fault stays; omitted for instant faults.")
    repeat: int = Field(1, ge=1, le=10_000)
    every: Duration | None = None
    name: str | None = None

    _params: BaseModel | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _repeat(self) -> Step:
        if self.repeat > 1 and self.every is None:
            raise ValueError("repeat needs every (the time between repetitions)")
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be greater than 0")
        return self

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def params(self) -> BaseModel:
        assert self._params is not None, "step parameters are validated by the loader"
        return self._params

    def occurrences(self) -> list[float]:
        """Offsets (seconds from t0) of each injection of this step."""
        return [self.at + k * (self.every or 0.0) for k in range(self.repeat)]


class Rollback(_Strict):
    """An action that always runs at the end, after every fault is reverted."""

    command: list[str] | None = Field(None, min_length=1, description="argv, never a shell")
    http: HttpProbeSpec | None = None
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _one(self) -> Rollback:
        if (self.command is None) == (self.http is None):
            raise ValueError("a rollback needs exactly one of command, http")
        return self


class StopCondition(_Strict):
    probe: str
    failing_for: Duration = 0.0
    description: str | None = None


# --- phases that end on evidence (docs/experiment-format.md, "Phases") --------------------------

class SteadyRecovery(_Strict):
    """``recovery: {until: steady, max: 30s}``: observe until the analysis's own rule says the
    system recovered (three good 1 s windows, docs/metrics.md), then ``min`` more; ``max`` at most."""

    until: Literal["steady"]
    max: Duration = Field(..., description="The recovery phase ends here at the latest (after the last revert).")
    min: Duration = Field(1.0, description="How long to keep observing once the recovery is seen.")

    @model_validator(mode="after")
    def _bounds(self) -> SteadyRecovery:
        if self.max <= 0:
            raise ValueError("max must be greater than 0")
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}s) must not be longer than max ({self.max:g}s)")
        return self


class StableBaseline(_Strict):
    """``baseline: {until: stable, min: 10s, max: 30s}``: the baseline ends once its steady-state
    figures are stable (docs/metrics.md, "Stable baseline"), not before ``min``, at ``max`` at the latest."""

    until: Literal["stable"]
    min: Duration = Field(10.0, description="The baseline lasts at least this long.")
    max: Duration = Field(..., description="The baseline ends here at the latest, stable or not.")

    @model_validator(mode="after")
    def _bounds(self) -> StableBaseline:
        if self.max <= 0:
            raise ValueError("max must be greater than 0")
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}s) must not be longer than max ({self.max:g}s)")
        return self


def _phase_form(value: Any) -> str:
    # a mapping is the evidence form; anything else is read (and refused) as a duration, so a
    # bad value gets one message for the form it was written in, not one per union member
    # (and when dumping, the model instance is the evidence form too)
    return "phase[until]" if isinstance(value, dict | BaseModel) else "phase[fixed]"


RecoverySpec = Annotated[
    Annotated[Duration, Tag("phase[fixed]")] | Annotated[SteadyRecovery, Tag("phase[until]")],
    Discriminator(_phase_form),
]
BaselineSpec = Annotated[
    Annotated[Duration, Tag("phase[fixed]")] | Annotated[StableBaseline, Tag("phase[until]")],
    Discriminator(_phase_form),
]


class Experiment(_Strict):
    title: str = Field(..., min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    stack: str | None = Field(None, description="Stack file to bring up first (relative to this file).")
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    load: LoadSpec | None = None
    probes: dict[str, ProbeSpec] = Field(default_factory=dict)
    method: list[Step] = Field(..., min_length=1)
    baseline: BaselineSpec | None = Field(
        None, description="The baseline's length, or {until: stable, min, max}; when given, each step's "
                          "`at` counts from the end of the baseline (default: the baseline lasts until the "
                          "first step's `at`).")
    recovery: RecoverySpec = Field(
        10.0, description="How long to keep observing after the last fault is reverted, or "
                          "{until: steady, max, min}.")
    rollbacks: list[Rollback] = Field(default_factory=list)
    stop_conditions: list[StopCondition] = Field(default_factory=list)
    verify: VerifySpec | None = None
    hypothesis: dict[str, Bound] = Field(default_factory=dict)
    max_duration: Duration = Field(600.0, description="Hard deadline for the whole run.")
    observe: dict[str, Any] = Field(default_factory=dict)

    @field_validator("targets", "probes")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
                raise ValueError(f"invalid name {name!r} (letters, digits, - and _)")
        return v

    @property
    def recovery_max(self) -> float:
        """The recovery phase's longest length (its fixed length, or ``max``)."""
        return self.recovery.max if isinstance(self.recovery, SteadyRecovery) else self.recovery

    @property
    def baseline_max(self) -> float:
        """Seconds from the run's start to the point step offsets count from (0 without ``baseline:``)."""
        if self.baseline is None:
            return 0.0
        return self.baseline.max if isinstance(self.baseline, StableBaseline) else self.baseline

    @property
    def ends_on_evidence(self) -> bool:
        """Whether a phase ends on what the run records (the runner then keeps an evidence view)."""
        return isinstance(self.baseline, StableBaseline) or isinstance(self.recovery, SteadyRecovery)

    def longest(self) -> float:
        """The run's longest planned length: baseline, method and recovery at their maxima."""
        return self.baseline_max + self.planned_end() + self.recovery_max

    def planned_end(self) -> float:
        """Offset at which the last fault is reverted (instant faults count at their offset)."""
        ends = [0.0]
        for step in self.method:
            for at in step.occurrences():
                ends.append(at + (step.duration or 0.0))
        return max(ends)

