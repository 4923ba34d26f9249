"""``chaoslab stack up|down|ps|logs|restart FILE``."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import ChaoslabError

F = TypeVar("F", bound=Callable[..., Any])

_file = click.argument("file", type=click.Path(dir_okay=False))
_state_dir = click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                          help="State directory (default: .chaoslab/stacks/<name>/ next to FILE).")


def _one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChaoslabError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _load(file: str, state_dir: str | None) -> Any:
    from .api import Stack

    return Stack.load(file, state_dir)


@click.group("stack")
def stack() -> None:
    """Run a system under test as local processes: own cgroups, restart policies, health checks."""


@stack.command()
@_file
@_state_dir
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds to wait for every service to be healthy; on timeout the stack is stopped.")
@_one_line_errors
def up(file: str, state_dir: str | None, timeout: float) -> None:
    """Start the stack; return once every service is healthy. A supervisor keeps running."""
    t0 = time.monotonic()
    s = _load(file, state_dir)
    st = s.up(timeout=timeout)
    click.echo(f"stack {s.name} is up in {time.monotonic() - t0:.2f}s (state: {s.dir.root})")
    _table(st)


@stack.command()
@_file
@_state_dir
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.option("--purge", is_flag=True, help="Also delete the state directory (data, logs, events).")
@_one_line_errors
def down(file: str, state_dir: str | None, timeout: float, purge: bool) -> None:
    """Stop every service (stop signal, SIGKILL after the grace period), remove the cgroups."""
    s = _load(file, state_dir)
    s.down(timeout=timeout, purge=purge)
    click.echo(f"stack {s.name} is down")


@stack.command()
@_file
@_state_dir
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@_one_line_errors
def ps(file: str, state_dir: str | None, as_json: bool) -> None:
    """Show pid, status, health, restarts, ports and cgroup of each service."""
    st = _load(file, state_dir).ps()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"stack {st.get('name')}: {st.get('status')}")
    _table(st)


@stack.command()
@_file
@click.argument("service", required=False)
@_state_dir
@click.option("-n", "--lines", type=int, default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@_one_line_errors
def logs(file: str, service: str | None, state_dir: str | None, lines: int, follow: bool) -> None:
    """Print the last lines of a service's log (all services when SERVICE is omitted)."""
    s = _load(file, state_dir)
    text = s.logs(service, lines)
    if text:
        click.echo(text)
    if not follow:
        return
    names = [service] if service else list(s.ps().get("services") or {})
    paths = {n: Path((s.ps()["services"].get(n) or {}).get("log") or s.dir.logs / f"{n}.log") for n in names}
    offsets = {n: p.stat().st_size if p.exists() else 0 for n, p in paths.items()}
    try:
        while True:
            for n, p in paths.items():
                if p.exists() and p.stat().st_size > offsets[n]:
                    with open(p, errors="replace") as f:
                        f.seek(offsets[n])
                        chunk = f.read()
                        offsets[n] = f.tell()
                    for ln in chunk.splitlines():
                        click.echo(f"{n} | {ln}" if len(paths) > 1 else ln)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


@stack.command()
@_file
@click.argument("services", nargs=-1)
@_state_dir
@click.option("--timeout", type=float, default=120.0, show_default=True)
@_one_line_errors
def restart(file: str, services: tuple[str, ...], state_dir: str | None, timeout: float) -> None:
    """Restart services (all when none are named) and wait until they are healthy again."""
    s = _load(file, state_dir)
    st = s.restart(list(services) or None, timeout=timeout)
    click.echo(f"restarted {', '.join(services) or 'all services'}")
    _table(st)


def _table(st: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("SERVICE", "KIND", "PID", "STATUS", "HEALTH", "RESTARTS", "PORTS", "CGROUP"):
        table.add_column(col)
    for name, s in (st.get("services") or {}).items():
        cg = s.get("cgroups") or {}
        cgroup = next(iter(cg.values()), "-")
        if cgroup != "-":
            cgroup = "/".join(str(cgroup).split("/")[-3:])  # relative to each hierarchy's root
        table.add_row(name, s.get("kind", ""), str(s.get("pid") or "-"), s.get("status", ""),
                      s.get("health", ""), str(s.get("restarts", 0)),
                      ",".join(map(str, s.get("ports") or [])) or "-", cgroup)
    console = Console()
    console.width = max(console.width, 140)  # cgroup paths are long; let a pipe see them whole
    console.print(table)


def main() -> None:
    stack(prog_name="chaoslab stack")


if __name__ == "__main__":
    main()
