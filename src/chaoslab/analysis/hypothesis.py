"""The verdict: every hypothesis assertion with its measured value, its bound and pass/fail."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..experiment.workload import Bound
from .names import format_value


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


def judge(name: str, value: Any, bound: dict[str, Any], why_missing: str | None) -> dict[str, Any]:
    """One assertion. A value that could not be measured never passes: it is not evidence."""
    try:
        bound = Bound.model_validate(bound).model_dump(exclude_none=True)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        return {"name": name, "value": value, "bound": bound, "bound_text": str(bound), "passed": False, "note": f"invalid bound: {msg}"}
    out: dict[str, Any] = {"name": name, "value": value, "bound": bound, "bound_text": bound_text(name, bound)}
    if value is None:
        out.update(passed=False, note=why_missing or "not measured in this run")
        return out
    passed = True
    if bound.get("max") is not None:
        passed &= value <= bound["max"]
    if bound.get("min") is not None:
        passed &= value >= bound["min"]
    if bound.get("equals") is not None:
        passed &= value == bound["equals"]
    out["passed"] = bool(passed)
    return out
