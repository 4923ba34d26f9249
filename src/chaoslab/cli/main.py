"""``chaoslab``: one entry point. Subcommands live in their own modules and load on demand,
so ``chaoslab --help`` imports almost nothing."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..registry import Registry

# Named lazily with the one line --help shows, so --help imports none of them.
COMMANDS: Registry[click.Command] = Registry("command")
COMMANDS.lazy("run", "chaoslab.cli.commands:run", "Run an experiment: inject, observe, revert, verdict.")
COMMANDS.lazy("validate", "chaoslab.cli.commands:validate", "Check experiment files; one line per error, exit 2.")
COMMANDS.lazy("suite", "chaoslab.cli.commands:suite_cmd", "Run several experiments in order, one combined report.")
COMMANDS.lazy("schema", "chaoslab.cli.commands:schema", "Print the JSON Schema of the experiment format.")
COMMANDS.lazy("faults", "chaoslab.cli.commands:faults_cmd", "List the fault types and their parameters.")
COMMANDS.lazy("recover", "chaoslab.cli.commands:recover_cmd", "Revert faults left by a dead run (from the ledger).")
COMMANDS.lazy("halt", "chaoslab.cli.commands:halt_cmd", "Stop every running experiment on this machine.")
COMMANDS.lazy("report", "chaoslab.cli.commands:report", "Re-render the reports of a run directory.")
COMMANDS.lazy("doctor", "chaoslab.cli.doctor:doctor", "What this machine can do, fault by fault.")
COMMANDS.lazy("stack", "chaoslab.stack.cli:stack", "Run a system under test as supervised local processes.")
COMMANDS.lazy("proxy", "chaoslab.proxy.cli:proxy", "The Toxiproxy-compatible fault proxy.")
COMMANDS.lazy("hosts", "chaoslab.cli.hosts:hosts", "Test hosts in network namespaces.")
COMMANDS.lazy("exporter", "chaoslab.cli.observe:exporter", "Serve chaos state as Prometheus metrics.")
COMMANDS.lazy("profile", "chaoslab.cli.observe:profile", "Record a CPU flamegraph of a target (py-spy).")
COMMANDS.lazy("demo", "chaoslab.demo:demo", "Run the demo: a service, faults, reports.")
COMMANDS.lazy("discover", "chaoslab.discover.cli:discover_cmd", "What a Compose project, stack or namespace holds.")
COMMANDS.lazy("init", "chaoslab.discover.cli:init_cmd", "Write a suite of experiments for a discovered system.")
COMMANDS.lazy("serve", "chaoslab.serve.command:serve", "The web console: watch, stop, compare and start runs.")
COMMANDS.lazy("import", "chaoslab.cli.commands:import_cmd", "Turn a Chaos Toolkit experiment into chaoslab YAML.")


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return COMMANDS.names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        try:
            cmd = COMMANDS.get(cmd_name)
        except (ImportError, AttributeError) as exc:
            raise click.ClickException(f"the {cmd_name!r} command is not available: {exc}") from None
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS.summary(name)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chaoslab")
def cli() -> None:
    """Chaos engineering for local processes, Docker containers and Compose services, and
    Kubernetes: declare an experiment, inject real faults, revert them whatever happens, and
    get a verdict backed by measurements.

    Exit codes of `run`: 0 hypothesis held, 1 violated, 2 invalid input,
    3 aborted (after reverting), 4 could not run."""


def main(argv: list[str] | None = None) -> Any:
    from ..errors import ChaoslabError

    try:
        return cli.main(args=argv, prog_name="chaoslab", standalone_mode=True)
    except ChaoslabError as exc:  # raised outside a command's own handling
        click.echo(f"chaoslab: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
