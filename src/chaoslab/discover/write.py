"""Experiment files and the suite as YAML a person reads: a header that says where the file came
from and what it needs, and each bound of the hypothesis with, beside it, the figure it rests on
(a measurement, or "default" when nothing was measured)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .propose import Proposal


def _flow(value: Any) -> str:
    """One-line YAML for a small mapping (a bound, a target)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def _block(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100, default_flow_style=None, allow_unicode=True)


def render(p: Proposal, source: str) -> str:
    lines = [f"# Written by `chaoslab init {source}`: edit freely, it is yours now."]
    lines += [f"# {h}" for h in p.header]
    lines.append(_block(p.data).rstrip())
    if p.hypothesis:
        lines.append("hypothesis:")
        width = max(len(b.key) + len(_flow(b.bound)) for b in p.hypothesis) + 4
        for b in p.hypothesis:
            entry = f"  {b.key}: {_flow(b.bound)}"
            lines.append(f"{entry:<{width}}  # {b.why}")
    return "\n".join(lines) + "\n"


def write_suite(out: Path, proposals: list[Proposal], source: str, name: str, advice: list[str],
                ready: dict[str, Any] | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in proposals:
        folder = out / "todo" if p.todo else out / "experiments"
        folder.mkdir(exist_ok=True)
        path = folder / p.file
        path.write_text(render(p, source))
        written.append(path)
    suite: dict[str, Any] = {"name": f"{name} (chaoslab init)", "pause": "5s", "grace": "60s"}
    if ready:
        suite["ready"] = ready
    suite["experiments"] = [f"experiments/{p.file}" for p in proposals if not p.todo]
    head = [f"# The suite `chaoslab init {source}` wrote: chaoslab suite run {out / 'suite.yaml'}",
            "# Each experiment alone: chaoslab run [--dry-run] experiments/NN-....yaml"]
    if any(p.todo for p in proposals):
        head.append("# todo/: experiments that need your input first (chaoslab validate todo/*.yaml says what).")
    if advice:
        head.append("#")
        head.append("# What cannot be tested yet (advice, not a silent skip):")
        head += [f"#   - {a}" for a in advice]
    (out / "suite.yaml").write_text("\n".join(head) + "\n" + _block(suite))
    written.append(out / "suite.yaml")
    return written


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
