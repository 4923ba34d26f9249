"""What Docker did to the targeted containers during the run, in plain words (from the Docker
events the runner copied into the journal with ``source: docker``)."""

from __future__ import annotations

import signal
from typing import Any

from ..records import Record, events


def container_events(journal: list[Record]) -> list[dict[str, Any]]:
    return [e for e in events(journal, "docker") if e.get("container")]


def _how(die: dict[str, Any], oom: bool) -> str:
    if oom:
        return "was OOM-killed"
    code = die.get("exit_code")
    if isinstance(code, int) and code > 128:
        try:
            return f"was killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return f"exited (code {code if code is not None else '?'})"


def container_findings(events: list[dict[str, Any]], t_inject: float | None) -> list[str]:
    """"postgres was OOM-killed at 31.2 s and restarted by Docker's policy 0.4 s later, healthy
    again at 34.0 s": one sentence per exit of a container after the first injection."""
    out = []
    for i, ev in enumerate(events):
        if ev.get("kind") != "die" or (t_inject is not None and ev["t"] < t_inject):
            continue
        name = ev["container"]
        later = [e for e in events[i + 1:] if e.get("container") == name]
        # The kernel's OOM kill is reported as its own event just before the die.
        oom = any(e.get("kind") == "oom" and e.get("container") == name and ev["t"] - 1.0 <= e["t"] <= ev["t"]
                  for e in events[:i])
        text = f"{name} {_how(ev, oom)} at {ev['t']:.1f} s"
        start = next((e for e in later if e.get("kind") in ("start", "die")), None)
        if start is not None and start.get("kind") == "start":
            policy = start.get("restart_policy")
            if policy and policy != "no":
                text += f" and restarted by Docker's {policy} policy {start['t'] - ev['t']:.1f} s later"
            else:
                text += f" and started again {start['t'] - ev['t']:.1f} s later"
            next_die = next((e["t"] for e in later if e.get("kind") == "die"), float("inf"))
            healthy = next((e for e in later if e.get("kind") == "health_status" and start["t"] <= e["t"] < next_die
                            and e.get("status") == "healthy"), None)
            if healthy is not None:
                text += f", healthy again at {healthy['t']:.1f} s"
        else:
            text += " and was not running again by the end of the run"
        out.append(text + ".")
    return out
