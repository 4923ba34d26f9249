"""The experiment's ``observe:`` section: which eBPF tracers to run and what to profile.

```yaml
observe:
  ebpf: [retransmits, tcp_state, resets, oom_kills, sched_wait]
  profile: {target: api, phases: [baseline, fault], rate: 100, gil: false}
```
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TRACERS = ("retransmits", "tcp_state", "resets", "oom_kills", "sched_wait")
Tracer = Literal["retransmits", "tcp_state", "resets", "oom_kills", "sched_wait"]
ProfiledPhase = Literal["baseline", "fault", "recovery"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _default_phases() -> list[ProfiledPhase]:
    return ["baseline", "fault"]


class ProfileSpec(_Strict):
    target: str = Field(..., min_length=1, description="A target name whose processes py-spy records.")
    phases: list[ProfiledPhase] = Field(default_factory=_default_phases, min_length=1)
    rate: int = Field(100, ge=1, le=1000, description="Samples per second.")
    subprocesses: bool = Field(False, description="Also profile the target's child processes.")
    gil: bool = Field(False, description="Only samples of threads holding the GIL: Python's CPU time, "
                                         "without threads waiting on a queue or a lock.")

    @field_validator("phases")
    @classmethod
    def _unique(cls, v: list[ProfiledPhase]) -> list[ProfiledPhase]:
        if len(set(v)) != len(v):
            raise ValueError("each phase may be listed once")
        return v


class ObserveSpec(_Strict):
    ebpf: list[Tracer] = Field(default_factory=list, description="Kernel tracers (bpftrace tracepoints).")
    profile: ProfileSpec | None = None

    @field_validator("ebpf")
    @classmethod
    def _unique(cls, v: list[Tracer]) -> list[Tracer]:
        return list(dict.fromkeys(v))


def parse_observe(observe: dict[str, Any]) -> ObserveSpec:
    """Validate an ``observe:`` mapping; a mistake raises ``ValueError`` with one clear line."""
    try:
        return ObserveSpec.model_validate(observe)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("observe", *err["loc"]))
        msg = err["msg"]
        if err["type"] == "literal_error" and err["loc"][:1] == ("ebpf",):
            msg = f"unknown tracer {err['input']!r} (known: {', '.join(TRACERS)})"
        elif err["type"] == "extra_forbidden":
            known = ", ".join(ObserveSpec.model_fields)
            msg = f"unknown field (known: {known})" if len(err["loc"]) == 1 else "unknown field"
        raise ValueError(f"{where}: {msg}") from None
