"""What the stack's supervisor did during the run, in plain words (from its journal events)."""

from __future__ import annotations

from typing import Any

from ..records import Record, events


def stack_events(journal: list[Record]) -> list[dict[str, Any]]:
    return [e for e in events(journal, "stack") if e.get("service")]


def stack_findings(events: list[dict[str, Any]], t_inject: float | None) -> list[str]:
    """"postgres was restarted by its policy 1.20 s after it exited and was healthy 3.40 s later"."""
    out = []
    for i, ev in enumerate(events):
        if ev.get("kind") != "restart" or (t_inject is not None and ev["t"] < t_inject):
            continue
        service = ev["service"]
        healthy = next(
            (h for h in events[i + 1:] if h.get("service") == service and h.get("kind") == "health"
             and h.get("status") == "healthy"),
            None,
        )
        after = ev.get("after_exit")
        text = f"{service} was restarted by its {ev.get('reason') or 'restart'} policy"
        if ev.get("reason") == "liveness":
            # the supervisor stopped it first, for a health check failing longer than its limit
            live = next((x for x in reversed(events[:i]) if x.get("service") == service
                         and x.get("kind") == "liveness"), None)
            failing = live.get("failing_for") if live else None
            text = f"{service} was restarted by its restart policy, stopped by the liveness rule"
            text += f" after its health check failed for {failing:.1f} s" if isinstance(failing, int | float) else ""
        text += f" {after:.2f} s after it exited" if isinstance(after, int | float) else ""
        text += f" (at {ev['t']:.2f} s)"
        if healthy is not None:
            text += f" and was healthy again {healthy['t'] - ev['t']:.2f} s later"
        else:
            text += " and was not healthy again by the end of the run"
        out.append(text + ".")
    for ev in events:
        if ev.get("kind") == "gave_up":
            out.append(f"{ev['service']}: the supervisor gave up restarting it ({ev.get('message', '')}).")
    return out
