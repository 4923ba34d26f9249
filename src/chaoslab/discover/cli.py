"""``chaoslab discover SOURCE`` and ``chaoslab init [SOURCE] -o DIR``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ExitCode, InputError
from .model import System

SOURCE_HELP = ("SOURCE: a Compose file, compose:PROJECT (a running Compose project, through Docker), "
               "a chaoslab stack file, or k8s:NAMESPACE (through the Kubernetes API).")


def _fail(exc: InputError) -> None:
    click.echo(f"chaoslab: {exc}", err=True)
    sys.exit(ExitCode.INVALID_INPUT)


def _discover(source: str, project: str | None, kubeconfig: str | None, context: str | None) -> System:
    from . import discover

    return discover(source, project=project, kubeconfig=kubeconfig, context=context)


_source_options = [
    click.option("--project", "-p", default=None, help="Compose project name (default: as Compose derives it)."),
    click.option("--kubeconfig", default=None, help="k8s:NAMESPACE: the kubeconfig (default: $KUBECONFIG, ~/.kube/config)."),
    click.option("--context", default=None, help="k8s:NAMESPACE: the kubeconfig context."),
]


def _with_source_options(f: Any) -> Any:
    for opt in reversed(_source_options):
        f = opt(f)
    return f


def table(system: System) -> str:
    from .propose import advice

    rows = [("SERVICE", "REPLICAS", "RESTART", "HEALTH", "PORTS", "STATE", "DEPENDS ON")]
    for s in system.services.values():
        ports = []
        for p in s.ports:
            where = f"{p.host}:{p.published or p.port}" if p.host else str(p.port)
            mark = " http" if p.http else "" if p.http is False else " ?"
            ports.append(f"{p.port}" + (f"->{where}" if p.host else f" (svc {p.cluster})" if p.cluster else "") + mark)
        deps = sorted({d.target for d in system.dependencies if d.source == s.name})
        replicas = str(s.replicas) + (f" ({s.running} up)" if s.running is not None else "")
        rows.append((s.name, replicas, s.restart, s.health.kind if s.health else "-",
                     ", ".join(ports) or "-", "yes" if s.stateful else "-", ", ".join(deps) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    head = f"{system.platform} {system.name!r} from {system.source}" + (" (live)" if system.live else "")
    lines = [head, ""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += ["", "Dependencies"]
    for d in system.dependencies:
        extra = f" port {d.port}" if d.port else ""
        extra += f" through proxy link {d.proxy['proxy']}" if d.proxy else ""
        lines.append(f"  {d.source} -> {d.target}  ({d.via}{extra})")
    stateful = [f"  {s.name}: {'; '.join(s.state)}" for s in system.services.values() if s.stateful]
    if stateful:
        lines += ["", "State", *stateful]
    faults = next(iter(system.services.values())).faults if system.services else []
    lines += ["", f"Faults that can act on each service here ({len(faults)}, from chaoslab doctor):",
              "  " + ", ".join(faults) if faults else "  none (see chaoslab doctor)"]
    notes = advice(system)
    if notes:
        lines += ["", "Advice (what cannot be tested yet)"] + [f"  - {a}" for a in notes]
    return "\n".join(lines)


@click.command("discover", epilog=SOURCE_HELP)
@click.argument("source")
@_with_source_options
@click.option("--json", "as_json", is_flag=True, help="The whole System as JSON.")
def discover_cmd(source: str, project: str | None, kubeconfig: str | None, context: str | None,
                 as_json: bool) -> None:
    """What SOURCE holds: services, replicas, restart policies, health checks, ports, dependencies,
    state, and the faults that can act on them here."""
    from .write import dump_json

    try:
        system = _discover(source, project, kubeconfig, context)
    except InputError as exc:
        _fail(exc)
        return
    click.echo(dump_json(system.to_dict()) if as_json else table(system))


@click.command("init", epilog=SOURCE_HELP + " Without SOURCE, asks in the terminal and writes one experiment.")
@click.argument("source", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The suite's directory (with SOURCE), or the experiment file (without).")
@_with_source_options
@click.option("--load", "load_url", default=None, metavar="URL",
              help="Add open-model GET load on URL, and error-rate and latency hypotheses.")
@click.option("--measure", default=None, metavar="DURATION",
              help="Watch the live system this long first (e.g. 60s) and set bounds from what it saw.")
def init_cmd(source: str | None, output: Path | None, project: str | None, kubeconfig: str | None,
             context: str | None, load_url: str | None, measure: str | None) -> None:
    """Write a suite of experiments for SOURCE into -o DIR, each one valid and runnable as written."""
    if source is None:
        from .interactive import ask

        try:
            ask(output or Path("experiment.yaml"))
        except InputError as exc:
            _fail(exc)
        return
    if output is None:
        raise click.UsageError("init SOURCE needs -o DIR")
    try:
        seconds = None
        if measure is not None:
            from ..units import parse_duration

            try:
                seconds = parse_duration(measure)
            except ValueError as exc:
                raise InputError(f"--measure: {exc}") from None
        system = _discover(source, project, kubeconfig, context)
        written, notes = init_suite(system, output, source, load_url, seconds)
    except InputError as exc:
        _fail(exc)
        return
    for path in written:
        click.echo(f"wrote {path}")
    for a in notes:
        click.echo(f"advice: {a}")
    click.echo(f"next: chaoslab suite validate {output / 'suite.yaml'}; "
               f"chaoslab run --dry-run {output / 'experiments'}/01-*.yaml")


def init_suite(system: System, out: Path, source: str, load_url: str | None,
               measure_seconds: float | None) -> tuple[list[Path], list[str]]:
    from . import measure as measuring
    from .propose import advice, probes_for, propose
    from .stack import relative
    from .write import write_suite

    stack_ref = relative(system.stack_file, out / "experiments") if system.stack_file else None
    m = None
    if measure_seconds:
        watched: dict[str, Any] = {}
        for s in system.services.values():
            watched.update(probes_for(system, s))
        click.echo(f"measuring {len(watched)} probes" + (f" and load on {load_url}" if load_url else "")
                   + f" for {measure_seconds:g}s ...", err=True)
        m = measuring.measure(system, watched, measure_seconds, load_url)
    elif system.live and system.platform == "compose":
        # the memory in use is one read per container, not a watch: the limit presses without
        # --measure (a fixed 64MB is refused by a service using more, nothing injected)
        m = measuring.Measurement(0)
        m.memory = measuring.memory_in_use(system)
    proposals = propose(system, load_url=load_url, measurement=m, stack_ref=stack_ref)
    if not proposals:
        raise InputError("nothing to propose: no fault of chaoslab doctor can act on these services here "
                         "(see chaoslab doctor)", file=source)
    ready = None
    http = [(s, p) for s in system.services.values() for p in s.ports if p.http and p.host and p.path]
    if http:
        s, p = http[0]
        ready = {"http": {"url": f"http://{p.host}:{p.published or p.port}{p.path}"}}
    return write_suite(out, proposals, source, system.name, advice(system), ready), advice(system)
