"""Value formatting shared by the reports: metric values in their units, bounds, verdict words."""

from __future__ import annotations

from typing import Any

from ..analysis.hypothesis import bound_text
from ..analysis.names import format_value


def value(name: str, v: Any) -> str:
    """A metric value the way a person reads it, chosen by the metric's unit."""
    return format_value(name, v)


def bound(name: str, b: dict[str, Any]) -> str:
    """A bound in the metric's own units: ``<= 5.0s``, ``>= 99.00%``."""
    return bound_text(name, b)


def verdict(a: dict[str, Any]) -> str:
    held = a.get("held")
    if not a.get("valid", True) and held is not False:
        return "INVALID"
    return "HELD" if held else "VIOLATED" if held is False else "NOTHING TO JUDGE"
