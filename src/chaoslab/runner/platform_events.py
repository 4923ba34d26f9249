"""What the platforms themselves saw during a run (the stack's supervisor, Docker), as journal
``event`` records on the run's clock. Shared by the runner and the programmatic session, which
ask every platform (targets.PLATFORMS) for its recorder instead of knowing any one of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..records import Record, record
from ..targets import EventRecorder, ResolvedTarget, platforms


def as_records(events: Iterable[dict[str, Any]], wall0: float, source: str) -> list[Record]:
    """Platform events (wall-clock ``time``, ``event``) as records at ``t`` = seconds after ``wall0``;
    other wall-clock times they carry (``<name>_wall``) go onto the run's clock too (``<name>_t``)."""
    out = []
    for ev in events:
        fields = {k: v for k, v in ev.items() if k not in ("time", "event") and not k.endswith("_wall")}
        fields.update({k.removesuffix("_wall") + "_t": round(float(v) - wall0, 6)
                       for k, v in ev.items() if k.endswith("_wall") and v is not None})
        out.append(record("event", float(ev["time"]) - wall0, source=source, kind=ev.get("event"), **fields))
    return out


OnError = Callable[[str, BaseException], None]
"""Told (what, error) when a platform's events cannot be had: the run's own records still stand."""


def start_recorders(targets: list[ResolvedTarget], since: float, on_error: OnError) -> list[EventRecorder]:
    """Each platform's recorder of its events about ``targets``, started (platforms with none
    to record give none)."""
    out = []
    for platform in platforms():
        try:
            recorder = platform.event_recorder(targets, since)
            if recorder is not None:
                out.append(recorder.start())
        except Exception as exc:
            on_error(platform.events_label, exc)
    return out


def stop_recorders(recorders: list[EventRecorder], until: float, wall0: float, on_error: OnError) -> list[Record]:
    out: list[Record] = []
    for recorder in recorders:
        try:
            events = recorder.stop(until)
        except Exception as exc:  # the daemon went away
            on_error(recorder.label, exc)
            continue
        out += as_records(events, wall0, recorder.source)
    return out


def events_between(targets: list[ResolvedTarget], since: float, until: float, on_error: OnError) -> list[Record]:
    """Every platform's events about ``targets`` in one query each (the session's way)."""
    out: list[Record] = []
    for platform in platforms():
        try:
            events = platform.events(targets, since, until)
        except Exception as exc:
            on_error(platform.events_label, exc)
            continue
        out += as_records(events, since, platform.name)
    return out
