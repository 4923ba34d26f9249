"""The data-loss checker: the history's writes against the final read (GUIDE §4, Jepsen-style).

Each operation's write is identified by the id the system acknowledged (``ack_id``, from the
ack rule's JSON path) or else by its client-chosen ``key``. Writes whose outcome the client
cannot know (timeouts, connections broken after sending) may legitimately appear in the final
read; a write the system explicitly refused must not.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..journal import write_id

UNKNOWN = "unknown"
CHECKED = "checked"
NOT_CHECKED = "not_checked"


@dataclass
class DataLoss:
    status: str
    reason: str | None = None
    acknowledged: int = 0
    attempted: int = 0
    final: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    recovered_from_timeout: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)  # refused explicitly, yet present
    duplicates: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int | None]:
        known = self.status == CHECKED
        return {
            "lost_writes": len(self.lost) if known else None,
            "unexpected_writes": len(self.unexpected) if known else None,
            "recovered_writes": len(self.recovered_from_timeout) if known else None,
            "resurrected_writes": len(self.resurrected) if known else None,
            "duplicates": len(self.duplicates) if known else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "acknowledged": self.acknowledged,
            "attempted": self.attempted,
            "final": self.final,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "recovered_from_timeout": self.recovered_from_timeout,
            "resurrected": self.resurrected,
            "duplicates": self.duplicates,
        }


def _explicit_failure(op: dict[str, Any]) -> bool:
    """The client was told the write failed: a response came back and it did not acknowledge."""
    if "refused" in op:
        return bool(op["refused"])
    return op.get("outcome") == "fail" and op.get("status") is not None


def check(ops: list[dict[str, Any]], verify: dict[str, Any] | None, wanted: bool) -> DataLoss:
    if verify is None:
        if wanted:
            return DataLoss(UNKNOWN, "no final read was recorded (verify.json missing)")
        return DataLoss(NOT_CHECKED, "the experiment has no verify step")
    if not verify.get("ok"):
        return DataLoss(UNKNOWN, f"the final read never succeeded: {verify.get('error') or 'no reason given'}")
    final_list = [str(v) for v in verify.get("ids") or []]
    final = set(final_list)
    acked = {write_id(op) for op in ops if op.get("ack")}
    sent = [op for op in ops if op.get("t_sent") is not None]
    attempted = {write_id(op) for op in sent}
    refused = {write_id(op) for op in sent if _explicit_failure(op)} - acked
    indeterminate = attempted - acked - refused
    present_unacked = (final & attempted) - acked
    dup_counts = Counter(final_list)
    return DataLoss(
        CHECKED,
        acknowledged=len(acked),
        attempted=len(attempted),
        final=len(final),
        lost=sorted(acked - final, key=_natural),
        unexpected=sorted(final - attempted, key=_natural),
        recovered_from_timeout=sorted(present_unacked & indeterminate, key=_natural),
        resurrected=sorted(present_unacked & refused, key=_natural),
        duplicates=sorted((v for v, c in dup_counts.items() if c > 1), key=_natural),
    )


def _natural(v: str) -> list[tuple[int, int | str]]:
    """Sort key that puts ``run-5`` before ``run-17``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", v) if part]
