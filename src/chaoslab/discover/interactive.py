"""``chaoslab init`` without SOURCE: a few questions, one commented experiment.

What a newcomer needs and nothing more: what to hit (target kind and name), how to tell it is
well (a URL to probe), what to do to it (a fault that can act on that kind of target here, as
`chaoslab doctor` says), and optionally load on the URL, which brings the error-rate and latency
hypotheses. Answers are read with click's prompts, so a script (or a test) can pipe them in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from .propose import Bound, Proposal
from .write import render

KINDS = ("compose", "container", "service", "process", "pod")
DEFAULT_FAULT = {"compose": "container.kill", "container": "container.kill", "service": "process.kill",
                 "process": "process.kill", "pod": "pod.kill"}
DESTRUCTIVE = {"container.remove", "disk.fill"}


def _faults_for(kind: str) -> list[str]:
    from .. import faults as registry
    from ..cli.doctor import fault_table

    kinds = {n: c.target_kinds or frozenset() for n, c in registry.all_faults(skip_broken=True).items()}
    return sorted(r.fault for r in fault_table()
                  if r.ok and kind in kinds.get(r.fault, frozenset()) and r.fault not in DESTRUCTIVE)


def _target(kind: str) -> tuple[str, dict[str, Any], str | None]:
    """(target name, target, stack file)"""
    if kind == "compose":
        project = click.prompt("Compose project", default=Path.cwd().name)
        service = click.prompt("Compose service")
        return service, {"compose": {"project": project, "service": service}, "mode": "one"}, None
    if kind == "container":
        name = click.prompt("Container name")
        return name, {"container": name, "mode": "one"}, None
    if kind == "service":
        stack = click.prompt("Stack file", default="stack.yaml")
        name = click.prompt("Service")
        return name, {"service": name}, stack
    if kind == "process":
        pattern = click.prompt("Command line pattern (a regular expression)")
        return "app", {"process": pattern, "mode": "one"}, None
    namespace = click.prompt("Namespace", default="default")
    selector = click.prompt("Pod label selector (e.g. app=web)")
    return selector.split("=")[-1] or "pods", {"pod": {"namespace": namespace, "selector": selector}, "mode": "one"}, None


def ask(output: Path) -> Path:
    click.echo("A first experiment: what to hit, how to tell it is well, what to do to it.")
    kind = click.prompt("Target kind", type=click.Choice(KINDS), default="compose")
    name, target, stack = _target(kind)
    url = click.prompt("A URL that answers while the system is well (blank: none)", default="", show_default=False)
    choices = _faults_for(kind)
    if not choices:
        raise InputError(f"no fault can act on a {kind} target on this machine (see chaoslab doctor)")
    default = DEFAULT_FAULT[kind] if DEFAULT_FAULT[kind] in choices else choices[0]
    fault = click.prompt("Fault", type=click.Choice(choices), default=default, show_choices=False)
    from ..faults import all_faults

    reversible = bool(getattr(all_faults(skip_broken=True)[fault], "reversible", True)) and not fault.endswith(".kill")
    step: dict[str, Any] = {"fault": fault, "target": name, "at": "5s"}
    if reversible:
        step["duration"] = click.prompt("How long the fault lasts", default="10s")
    rate = click.prompt("Load: GET requests per second on the URL (blank: no load)", default="",
                        show_default=False) if url else ""

    data: dict[str, Any] = {"title": f"{name}: {fault}", "description": f"{fault} on {name}; it comes back by itself.",
                            "tags": ["chaoslab-init"]}
    if stack:
        data["stack"] = stack
    data["targets"] = {name: target}
    hypothesis = [Bound("time_to_recovery", {"max": "30s"},
                        "back to the steady state within 30 s of the fault's end (a guess: measure it)")]
    if url and rate:
        data["load"] = {"http": {"url": url, "method": "GET", "rate": f"{rate}/s" if rate.isdigit() else rate,
                                 "timeout": "2s"}}
        hypothesis += [Bound("error_rate.baseline", {"max": 0.01}, "the steady state: under 1% errors before the fault"),
                       Bound("latency.p99.recovery", {"max": "1s"}, "p99 after the fault (a guess: measure it)")]
    probes: dict[str, Any] = {}
    if url:
        probes["health"] = {"http": {"url": url}, "every": "500ms", "timeout": "1s"}
    elif kind in ("compose", "container"):
        probes["container"] = {"container": {"target": name}, "every": "500ms", "timeout": "2s"}
    elif kind == "pod":
        probes["pods"] = {"pods": {"namespace": target["pod"]["namespace"], "selector": target["pod"]["selector"]},
                          "every": "1s", "timeout": "5s"}
    else:
        probes["alive"] = {"process": {"target": name}, "every": "500ms"}
    data["probes"] = probes
    data["method"] = [step]
    data["recovery"] = "30s"
    data["max_duration"] = "3m"
    header = ["Check it: chaoslab validate " + str(output), "Plan it:  chaoslab run --dry-run " + str(output),
              "Run it:   chaoslab run " + str(output)]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(Proposal(output.name, data, hypothesis, header), "(interactive)"))
    click.echo(f"wrote {output}")
    return output
