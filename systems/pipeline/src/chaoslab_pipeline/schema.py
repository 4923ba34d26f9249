"""What a valid log record is, and the name of what is wrong with an invalid one.

A record: ``{"id": str, "source": str, "level": DEBUG|INFO|WARN|ERROR, "message": str,
"amount": decimal (string or number, at most 4 fraction digits, 16 integer digits)}``.
The names of the defects are the dead-letter reasons (``invalid:<kind>``).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

LEVELS = frozenset({"DEBUG", "INFO", "WARN", "ERROR"})
REQUIRED = ("id", "source", "level", "message", "amount")
SCALE = 4
INTEGER_DIGITS = 16
MAX_BYTES = 64 * 1024

KINDS = ("missing_field", "wrong_type", "bad_decimal", "unknown_enum", "invalid_json", "oversize")


class Invalid(ValueError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def parse(raw: bytes) -> dict[str, Any]:
    """The record as a JSON object, or Invalid(oversize | invalid_json)."""
    if len(raw) > MAX_BYTES:
        raise Invalid("oversize", f"{len(raw)} bytes > {MAX_BYTES}")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser goes (60 KB of "[" does it); not a
        # ValueError, and uncaught it ended the consumer's loop
        raise Invalid("invalid_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise Invalid("wrong_type", "the record is not a JSON object")
    return obj


def validate(rec: dict[str, Any], accept: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The record normalised for storage (amount as a Decimal), or Invalid.

    ``accept`` names defects to let through: it exists only to plant the bug of
    docs/pipeline.md (a consumer that stores one malformed kind by mistake).
    """
    for name in REQUIRED:
        if name not in rec and "missing_field" not in accept:
            raise Invalid("missing_field", name)
    for name in ("id", "source", "message", "level"):
        if name in rec and not isinstance(rec[name], str) and "wrong_type" not in accept:
            raise Invalid("wrong_type", f"{name} is {type(rec[name]).__name__}")
    if "level" in rec and rec["level"] not in LEVELS and "unknown_enum" not in accept:
        raise Invalid("unknown_enum", f"level {str(rec['level'])[:40]!r}")
    amount = rec.get("amount")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, str | int | float):
            if "wrong_type" not in accept:
                raise Invalid("wrong_type", f"amount is {type(amount).__name__}")
            amount = None
        else:
            try:
                dec = Decimal(str(amount))
            except InvalidOperation:
                raise Invalid("wrong_type", f"amount {str(amount)[:40]!r} is not a number") from None
            exp = dec.as_tuple().exponent
            if not dec.is_finite() or not isinstance(exp, int):
                raise Invalid("bad_decimal", f"amount {amount!r} is not finite")
            if "bad_decimal" not in accept and (-exp > SCALE or dec.adjusted() >= INTEGER_DIGITS):
                raise Invalid("bad_decimal", f"amount {amount!r} exceeds numeric({INTEGER_DIGITS + SCALE},{SCALE})")
            amount = dec
    return {
        "id": str(rec.get("id")),
        "source": str(rec.get("source", "")),
        "level": str(rec.get("level", "")),
        "message": str(rec.get("message", "")),
        "amount": amount,
    }
