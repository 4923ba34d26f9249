"""Findings from the per-phase flamegraph records: the hottest functions of each phase, and the
function that grew under the fault (its share of CPU samples against the baseline's)."""

from __future__ import annotations

from typing import Any


def flamegraph_findings(flamegraphs: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for fg in flamegraphs:
        hot = fg.get("hot") or []
        if hot:
            names = ", ".join(f"{h['function']} ({h['share']:.0%})" for h in hot[:3])
            out.append(f"CPU profile of the {fg.get('phase')} phase: hottest {names} ({fg.get('path')}).")
        grew = fg.get("grew")
        if grew:
            out.append(f"In the {fg.get('phase')} phase, {grew['function']} grew most: "
                       f"{grew['share']:.0%} of CPU samples, {grew['baseline_share']:.0%} in baseline.")
    return out
