"""``chaoslab demo``: the whole loop against the reference exchange, in about five minutes.

Brings the exchange stack up (PostgreSQL, Redis, the fault proxy, the trading API, nginx and the
simulators), runs the seeds' headline experiments with the live console (database sudden death,
a network partition between the API and PostgreSQL, a Redis failure), writes each run's reports,
says where they are, and takes the stack down again whatever happens. A stack that was already
up is left up: the demo only stops what it started.

``--quick`` runs the same experiments with fault windows of a few seconds (about a minute in all),
which is what the test suite uses.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .errors import VERDICT_CODES

EXCHANGE = Path(__file__).resolve().parents[2] / "examples" / "exchange"
STACK_FILE = EXCHANGE / "stack.yaml"


@dataclass(frozen=True)
class DemoExperiment:
    file: str
    quick: dict[str, str]
    """Variables that shrink the windows for ``--quick``."""


HEADLINE = (
    DemoExperiment("01-database-sudden-death.yaml", {"FAULT_AT": "5s", "DOWN_FOR": "4s", "RECOVERY": "8s"}),
    DemoExperiment("02-network-partition.yaml", {"FAULT_AT": "5s", "FAULT_FOR": "8s", "RECOVERY": "10s"}),
    DemoExperiment("07-redis-cache-failure.yaml", {"FAULT_AT": "4s", "FAULT_FOR": "6s", "RECOVERY": "8s"}),
)

# A verdict either way is the demo working: a violated hypothesis is a weakness found.


def partition_vars() -> dict[str, str]:
    """The kernel partition needs root (nftables); otherwise the proxy cuts the same link."""
    if os.geteuid() == 0:
        return {}
    return {"PARTITION": "network.blackhole", "SIDE": "link"}


def _vars(exp: DemoExperiment, quick: bool) -> dict[str, str]:
    out = dict(exp.quick) if quick else {}
    if exp.file.startswith("02-"):
        out.update(partition_vars())
    return out


def _run_one(exp: DemoExperiment, quick: bool, runs_dir: Path) -> Any:
    from .console import make_console
    from .experiment.loader import load_experiment
    from .runner.run import RunOptions, run_experiment

    loaded = load_experiment(EXCHANGE / "experiments" / exp.file, _vars(exp, quick))
    console = make_console(loaded.experiment)
    opts = RunOptions(run_root=runs_dir, listeners=[console.on_record], print=console.print_line)
    with console:
        result = run_experiment(loaded, opts)
    console.verdict(result)
    return result


@click.command()
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True, help="Where the run directories and their reports go.")
@click.option("--quick", is_flag=True, help="Fault windows of a few seconds (about a minute in all).")
@click.option("--keep-stack", is_flag=True, help="Leave the exchange running afterwards.")
def demo(runs_dir: Path, quick: bool, keep_stack: bool) -> None:
    """Run the demo: the exchange under load, real faults, verdicts and reports."""
    from .errors import ChaoslabError
    from .stack import Stack

    if not STACK_FILE.exists():
        raise click.ClickException(f"the exchange example is not here ({STACK_FILE}); run the demo from a "
                                   "source checkout")
    stack = Stack.load(STACK_FILE)
    was_up = stack.is_up()
    started = time.monotonic()
    results: list[tuple[str, Any]] = []
    try:
        click.secho("== bringing the exchange up" + (" (already running)" if was_up else ""), bold=True)
        try:
            stack.up()
        except ChaoslabError as exc:
            raise click.ClickException(str(exc)) from None
        for exp in HEADLINE:
            click.secho(f"\n== {exp.file}", bold=True)
            results.append((exp.file, _run_one(exp, quick, runs_dir)))
    finally:
        if was_up or keep_stack:
            click.echo(f"\nThe exchange stays up: chaoslab stack down {STACK_FILE}")
        else:
            click.secho("\n== taking the exchange down", bold=True)
            stack.down()
    click.secho(f"\n== demo summary ({time.monotonic() - started:.0f} s)", bold=True)
    for name, result in results:
        click.echo(f"  {name:<36} {result.outcome.upper():<9} exit {result.exit_code}  reports: {result.run_dir}")
    click.echo("Open report.html in a run directory for the charts; docs/results.md explains the findings.")
    if any(result.exit_code not in VERDICT_CODES for _, result in results):
        raise click.ClickException("an experiment did not reach a verdict (see above)")
