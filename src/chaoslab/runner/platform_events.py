"""What the platform itself saw during a run (the stack's supervisor, Docker), as journal
``event`` records on the run's clock. Shared by the runner and the programmatic session."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..records import Record, record


def as_records(events: Iterable[dict[str, Any]], wall0: float, source: str) -> list[Record]:
    """Platform events (wall-clock ``time``, ``event``) as records at ``t`` = seconds after ``wall0``."""
    out = []
    for ev in events:
        fields = {k: v for k, v in ev.items() if k not in ("time", "event")}
        out.append(record("event", float(ev["time"]) - wall0, source=source, kind=ev.get("event"), **fields))
    return out


def container_refs(containers: Iterable[dict[str, Any]]) -> set[str]:
    """By id and by name: a container recreated under the same name is reported too."""
    return {ref for c in containers for ref in (c["id"], c["name"])}
