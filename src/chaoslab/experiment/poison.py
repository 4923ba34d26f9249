"""``load.http.poison``: malformed payloads mixed into the offered load (docs/poison.md).

A share of the operations carries one defect each, of a kind taken in turn from ``kinds``;
the history tags every such operation with its kind, and the analysis checks the system's
answer per kind: rejected at the edge or dead-lettered, never stored as valid, never lost.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..units import Size

PoisonKind = Literal["missing_field", "wrong_type", "bad_decimal", "unknown_enum", "truncated_json", "oversize"]
POISON_KINDS: tuple[PoisonKind, ...] = (
    "missing_field", "wrong_type", "bad_decimal", "unknown_enum", "truncated_json", "oversize",
)


class PoisonFields(BaseModel):
    """Which field of the JSON body each defect is made on (top-level keys of ``body``)."""

    model_config = ConfigDict(extra="forbid")

    required: str = Field("source", description="missing_field: this field is removed.")
    typed: str = Field("amount", description="wrong_type: this field's value is wrapped in a JSON list.")
    decimal: str = Field("amount", description="bad_decimal: this field gets more fraction digits than allowed.")
    enum: str = Field("level", description="unknown_enum: this field gets a value outside its enumeration.")
    padded: str = Field("message", description="oversize: this field is padded to the oversize length.")


class PoisonSpec(BaseModel):
    """Malformed payloads at ``share`` of the operations, kinds in turn."""

    model_config = ConfigDict(extra="forbid")

    share: float = Field(..., gt=0, le=1, description="Fraction of operations made malformed, e.g. 0.1.")
    kinds: list[PoisonKind] = Field(default_factory=lambda: list(POISON_KINDS), min_length=1)
    fields: PoisonFields = Field(default_factory=PoisonFields)
    decimal_places: int = Field(9, ge=1, le=1000, description="bad_decimal: fraction digits of the bad value.")
    oversize: Size = Field(1024 * 1024, description="oversize: body size to reach, e.g. 1MB.")

    @field_validator("oversize")
    @classmethod
    def _bounded(cls, v: int) -> int:
        if not 1 <= v <= 64 * 1024 * 1024:
            raise ValueError("oversize must be between 1 byte and 64MiB (the generator builds each body in memory)")
        return v

    @field_validator("kinds")
    @classmethod
    def _unique(cls, v: list[PoisonKind]) -> list[PoisonKind]:
        if len(set(v)) != len(v):
            raise ValueError("kinds must not repeat")
        return v
