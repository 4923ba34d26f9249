"""A step's figures: the metric values it measured, and why each one it could not is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figures:
    """Part of ``metrics`` and ``missing`` (docs/metrics.md); a value is None exactly when it
    could not be measured, and then ``missing`` usually says why."""

    values: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
