"""Malformed payloads for ``load.http.poison`` (docs/poison.md).

Which operations are poisoned is a pure function of the sequence number, so the history,
the generator and a re-analysis all agree without sharing state: operation k is malformed
when ``floor((k+1)*share) > floor(k*share)`` (exactly ``share`` of them, evenly spread), and
its kind is the next one of ``kinds`` in turn.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..experiment.poison import PoisonSpec

UNKNOWN_ENUM = "CHAOSLAB_UNKNOWN_VALUE"


class Poisoner:
    def __init__(self, spec: PoisonSpec) -> None:
        self.spec = spec

    def kind(self, seq: int) -> str | None:
        share = self.spec.share
        n = math.floor(seq * share)
        if math.floor((seq + 1) * share) <= n:
            return None
        return self.spec.kinds[n % len(self.spec.kinds)]

    def encode(self, kind: str, body: Any) -> bytes:
        """The rendered JSON body with the defect ``kind`` (a body that is not an object only
        gets the defects that need no field: truncated_json, oversize)."""
        f = self.spec.fields
        obj: Any = dict(body) if isinstance(body, dict) else body
        if isinstance(obj, dict):
            if kind == "missing_field":
                obj.pop(f.required, None)
            elif kind == "wrong_type":
                obj[f.typed] = [obj.get(f.typed)]
            elif kind == "bad_decimal":
                whole = str(obj.get(f.decimal, "1")).split(".")[0].lstrip("-") or "1"
                obj[f.decimal] = f"{whole if whole.isdigit() else '1'}.{'1' * self.spec.decimal_places}"
            elif kind == "unknown_enum":
                obj[f.enum] = UNKNOWN_ENUM
            elif kind == "oversize":
                size = len(json.dumps(obj, separators=(",", ":")))
                obj[f.padded] = str(obj.get(f.padded, "")) + "x" * max(0, self.spec.oversize - size)
        data = json.dumps(obj, separators=(",", ":")).encode()
        if kind == "truncated_json":
            return data[: max(1, len(data) // 2)]
        if kind == "oversize" and len(data) < self.spec.oversize:
            data += b" " * (self.spec.oversize - len(data))  # JSON allows trailing whitespace
        return data
