"""``chaoslab exporter`` (chaos state of a runs directory as Prometheus metrics) and
``chaoslab profile`` (a one-off py-spy flamegraph, the seeds' ``make profile-cpu``)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import click

from ..errors import ChaoslabError, ExitCode, InputError, TargetError
from ..units import format_duration, parse_duration


@click.command("exporter")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True, help="Run directories to report on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
def exporter(runs_dir: Path, port: int, host: str) -> None:
    """Serve the chaos state of the runs in RUNS_DIR and the fault ledger as Prometheus metrics."""
    from prometheus_client import CollectorRegistry

    from ..observe.exporter import serve
    from ..observe.runs import runs_collectors
    from ..runner.ledger import dead_runs

    registry = CollectorRegistry(auto_describe=False)
    for collector in runs_collectors(runs_dir, dead_runs):
        registry.register(collector)
    try:
        server, _ = serve(registry, port, host)
    except OSError as exc:
        click.echo(f"chaoslab: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(ExitCode.COULD_NOT_RUN)
    click.echo(f"serving chaos metrics of {runs_dir} on http://{host}:{server.server_port}/metrics", err=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.shutdown()
    server.server_close()


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("profile")
@click.argument("target")
@click.option("--duration", default="30s", show_default=True, callback=_duration, help="How long to sample.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="SVG to write (default: flamegraph-<target>-<time>.svg).")
@click.option("--rate", type=click.IntRange(1, 1000), default=100, show_default=True, help="Samples per second.")
@click.option("--stack", "stack_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Stack file: TARGET is one of its services.")
@click.option("--subprocesses", is_flag=True, help="Also profile the target's child processes.")
def profile(target: str, duration: float, output: Path | None, rate: int, stack_file: Path | None,
            subprocesses: bool) -> None:
    """Record a CPU flamegraph of TARGET (a pid, a stack service with --stack, or a command-line
    pattern) with py-spy and name its hottest functions."""
    from ..observe.profile import Recording, summary

    try:
        pid = _resolve_pid(target, stack_file)
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in target)[:40]
        out = output or Path(f"flamegraph-{name}-{time.strftime('%Y%m%d-%H%M%S')}.svg")
        rec = Recording.start(pid, out, rate=rate, duration=duration, subprocesses=subprocesses, label=target)
    except ChaoslabError as exc:
        click.echo(f"chaoslab: {exc}", err=True)
        sys.exit(exc.exit_code)
    click.echo(f"profiling pid {pid} for {format_duration(duration)} at {rate} Hz ...", err=True)
    try:
        error = rec.wait(timeout=duration + 30)
    except KeyboardInterrupt:
        rec.interrupt()  # Ctrl-C: keep what was sampled so far
        error = rec.wait()
    if error is not None:
        click.echo(f"chaoslab: profiling pid {pid} failed: {error}", err=True)
        sys.exit(ExitCode.COULD_NOT_RUN)
    info = summary(out)
    click.echo(f"wrote {out} ({info['samples']} samples)")
    for hot in info["hot"]:
        click.echo(f"  {hot['share'] * 100:5.1f}%  {hot['function']}")


def _resolve_pid(target: str, stack_file: Path | None) -> int:
    from pydantic import ValidationError

    from ..targets import TargetSpec, resolve

    stack = str(stack_file.resolve()) if stack_file else None
    try:
        if target.isdigit():
            spec = TargetSpec(pid=int(target))
        elif stack is not None:
            spec = TargetSpec(service=target, stack=stack)
        else:
            spec = TargetSpec(process=target)
        resolved = resolve(target, spec, stack_file=stack)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"target {target!r}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    except ValueError as exc:
        raise InputError(f"target {target!r}: {exc}") from None
    pids = [p.pid for p in resolved.processes if p.alive()]
    if not pids:
        raise TargetError(f"{target!r} matches no running process")
    return min(pids)


__all__ = ["exporter", "profile"]
