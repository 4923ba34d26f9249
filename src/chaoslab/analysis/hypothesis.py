"""The verdict: every hypothesis assertion with its measured value, its bound and pass/fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..experiment.names import format_value, survives_lag
from ..experiment.workload import Bound


def bound_text(name: str, bound: dict[str, Any]) -> str:
    """A bound in the metric's own units: ``<= 5.0s``, ``>= 99.00%``."""
    parts = []
    if bound.get("min") is not None:
        parts.append(f">= {format_value(name, bound['min'])}")
    if bound.get("max") is not None:
        parts.append(f"<= {format_value(name, bound['max'])}")
    if bound.get("equals") is not None:
        parts.append(f"== {bound['equals']!r}")
    return " and ".join(parts) or "?"


@dataclass(frozen=True)
class Assertion:
    """One hypothesis key judged: its measured value against its bound."""

    name: str
    value: Any
    bound: dict[str, Any]
    bound_text: str
    passed: bool
    note: str | None = None
    """Why it failed without a value (not measured, or an invalid bound)."""

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "value": self.value, "bound": self.bound, "bound_text": self.bound_text,
               "passed": self.passed}
        if self.note is not None:
            out["note"] = self.note
        return out


def judge(name: str, value: Any, bound: dict[str, Any], why_missing: str | None) -> Assertion:
    """One assertion. A value that could not be measured never passes: it is not evidence."""
    try:
        bound = Bound.model_validate(bound).model_dump(exclude_none=True)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        return Assertion(name, value, bound, str(bound), False, f"invalid bound: {msg}")
    text = bound_text(name, bound)
    if value is None:
        return Assertion(name, value, bound, text, False, why_missing or "not measured in this run")
    passed = True
    if bound.get("max") is not None:
        passed &= value <= bound["max"]
    if bound.get("min") is not None:
        passed &= value >= bound["min"]
    if bound.get("equals") is not None:
        passed &= value == bound["equals"]
    return Assertion(name, value, bound, text, bool(passed))


@dataclass(frozen=True)
class Judgement:
    """The hypothesis judged as a whole."""

    assertions: list[Assertion]
    held: bool | None
    """True when every assertion passed, False when one failed, None when there is none or the
    run is invalid (then only a failure that does not depend on the load's rate counts)."""

    @property
    def failed(self) -> list[str]:
        return [a.name for a in self.assertions if not a.passed]


def judge_all(hypothesis: dict[str, dict[str, Any]], metrics: dict[str, Any], missing: dict[str, str],
              valid: bool) -> Judgement:
    assertions = [judge(name, metrics.get(name), dict(bound), missing.get(name)) for name, bound in hypothesis.items()]
    held: bool | None = all(a.passed for a in assertions) if assertions else None
    if not valid:  # nothing can be cleared on late load, but lost or poisoned data is still found
        held = False if any(not a.passed and a.value is not None and survives_lag(a.name) for a in assertions) else None
    return Judgement(assertions, held)
