"""``chaoslab demo``: the whole loop on this machine in about a minute.

Starts the small example service, runs the basic experiments against it with the live console
(one whose hypothesis holds, one that finds a weakness), writes the reports and says where they
are, and stops the service whatever happens.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import click

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "basic"
EXPERIMENTS = ("pause-under-load.yaml", "kill-without-supervisor.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_service(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "service.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise click.ClickException("the example service did not start")


@click.command()
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True)
def demo(runs_dir: Path) -> None:
    """Run the demo: a service under load, faults, verdicts and reports."""
    from .console import make_console
    from .experiment.loader import load_experiment
    from .runner.run import RunOptions, run_experiment

    if not (EXAMPLES / "service.py").exists():
        raise click.ClickException(f"the examples are not here ({EXAMPLES}); run the demo from a source checkout")
    results = []
    for name in EXPERIMENTS:
        port = _free_port()
        service = _start_service(port)
        try:
            click.secho(f"\n== {name} (service on port {port})", bold=True)
            loaded = load_experiment(EXAMPLES / name, {"PORT": str(port)})
            console = make_console(loaded.experiment)
            opts = RunOptions(run_root=runs_dir, listeners=[console.on_record], print=console.print_line)
            with console:
                result = run_experiment(loaded, opts)
            console.verdict(result)
            results.append((name, result))
        finally:
            service.kill()
            service.wait()
    click.secho("\n== demo summary", bold=True)
    for name, result in results:
        click.echo(f"  {name:<32} {result.outcome.upper():<9} exit {result.exit_code}  reports: {result.run_dir}")
    expected = {"pause-under-load.yaml": 0, "kill-without-supervisor.yaml": 1}
    if any(result.exit_code != expected[name] for name, result in results):
        raise click.ClickException("the demo did not end as expected (see above)")
    click.echo("Open report.html in a run directory to see the charts.")
