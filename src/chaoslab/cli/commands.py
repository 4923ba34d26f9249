"""The core commands: run, report, validate, schema, faults, recover, halt."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from ..errors import ChaoslabError, ExitCode, InputError
from ..records import Record


def _vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--var")
        out[key] = value
    return out


def _overlay(file: Path | None, variables: tuple[str, ...]) -> Any:
    """The ``--targets`` overlay (docs/experiment-format.md), or None."""
    if file is None:
        return None
    from ..experiment.overlay import load_overlay

    return load_overlay(file, _vars(variables))


_targets_option = click.option(
    "--targets", "targets_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="A targets overlay: run the same files against another platform (e.g. "
         "examples/exchange/compose-targets.yaml).")


def _fail(exc: ChaoslabError) -> NoReturn:
    for line in str(exc).splitlines():
        click.echo(f"chaoslab: {line}" if not isinstance(exc, InputError) else line, err=True)
    sys.exit(exc.exit_code)


L = TypeVar("L")


def _load(load: Callable[..., L], file: Path, variables: tuple[str, ...], targets_file: Path | None) -> L:
    """``load`` (an experiment or a suite) with the command line's variables and targets file;
    bad input is its one clear line and exit 2."""
    try:
        return load(file, _vars(variables), _overlay(targets_file, variables))
    except InputError as exc:
        _fail(exc)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Substitute ${KEY} in the file.")
@click.option("--dry-run", is_flag=True, help="Print the plan (faults, resolved targets, times); inject nothing.")
@click.option("--recover", "recover_first", is_flag=True, help="Revert a dead run's leftovers first.")
@click.option("--quiet", "-q", is_flag=True, help="Only the verdict line (for CI).")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True, help="Where run directories are written.")
@click.option("--report", "report_formats", default="md,html,junit,json", show_default=True,
              help="Report formats written at the end.")
@click.option("--metrics-port", type=int, default=None,
              help="Expose chaos state as Prometheus metrics on 127.0.0.1:PORT during the run.")
@_targets_option
def run(file: Path, variables: tuple[str, ...], dry_run: bool, recover_first: bool, quiet: bool,
        runs_dir: Path, report_formats: str, metrics_port: int | None, targets_file: Path | None) -> None:
    """Run the experiment FILE."""
    # Until the runner installs its own handlers (just before the first injection), SIGINT and
    # SIGTERM end start-up with exit 3 like any abort, instead of the default death by signal.
    # The handler raises wherever the program is; where an exception cannot go on (a weakref
    # callback in the import system, a __del__), the interpreter would print it as "Exception
    # ignored" and carry on: such a signal is kept (_SIGNALLED), its report is silenced, and it is
    # acted on at the next step (after the load, or by the runner as soon as its handlers are in).
    _SIGNALLED.clear()
    previous = {sig: signal.signal(sig, _abort_start_up) for sig in (signal.SIGINT, signal.SIGTERM)}
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_abort(unraisable)
    try:
        _run(file, variables, dry_run, recover_first, quiet, runs_dir, report_formats, metrics_port, targets_file)
    except _StartUpAborted as exc:
        click.echo(f"chaoslab: aborted by {exc.name} during start-up, before any fault was injected",
                   err=True)
        sys.exit(ExitCode.ABORTED)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = unraisable


class _StartUpAborted(BaseException):
    """Raised by the start-up signal handler; a BaseException so that no ``except Exception``
    on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


#: Signals caught during start-up, in order (see run()).
_SIGNALLED: list[int] = []


def _abort_start_up(signum: int, frame: object) -> None:
    _SIGNALLED.append(signum)
    raise _StartUpAborted(signum)


def _signalled() -> int | None:
    return _SIGNALLED[0] if _SIGNALLED else None


def _quiet_abort(hook: Any) -> Any:
    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, _StartUpAborted):
            hook(unraisable)
    return quiet


def _run(file: Path, variables: tuple[str, ...], dry_run: bool, recover_first: bool, quiet: bool,
         runs_dir: Path, report_formats: str, metrics_port: int | None, targets_file: Path | None) -> None:
    # Start-up allocates the modules, the pydantic schemas and the experiment, which all live until
    # the process ends, and frees almost nothing: the collector's passes over them were ~10% of the
    # CPU before the first sample (bench/watch_cost.py). Collect nothing until the experiment is
    # loaded, then freeze what exists (no later full collection walks it) and collect as usual;
    # unfrozen at the end, for a caller that runs several experiments in one process.
    collecting = gc.isenabled()
    gc.disable()
    try:
        from ..experiment.loader import load_experiment
        from ..runner.run import RunOptions, run_experiment
        from .console import make_console

        loaded = _load(load_experiment, file, variables, targets_file)
        signum = _signalled()
        if signum is not None:
            raise _StartUpAborted(signum)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    try:
        console = make_console(loaded.experiment, quiet=quiet)
        opts = RunOptions(
            run_root=runs_dir,
            dry_run=dry_run,
            recover=recover_first,
            reports=tuple(f for f in report_formats.split(",") if f),
            listeners=[console.on_record],
            print=console.print_line,
            signalled=_signalled,
        )
        if metrics_port is not None:
            from ..observe.exporter import RunExporter

            opts.observers.append(RunExporter(metrics_port))
        with console:
            result = run_experiment(loaded, opts)
    finally:
        gc.unfreeze()
    if result.run_dir is None and result.exit_code != 0:
        # refused before anything started (target, capability, ledger, halt): one line, no verdict
        click.echo(f"chaoslab: {result.reason}", err=True)
    elif not dry_run:
        console.verdict(result)
    sys.exit(result.exit_code)


def _report_formats(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    from ..report import FILES

    chosen = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FILES]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown format {', '.join(unknown) or '(none)'}; choose from {','.join(FILES)}")
    return chosen


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format", "-f", "formats", default="md,html,junit,json", show_default=True, callback=_report_formats,
    help="Comma-separated report formats.",
)
def report(run_dir: Path, formats: list[str]) -> None:
    """Analyse RUN_DIR (reading only its files), decide its verdict and write its reports into it."""
    from ..journal import JOURNAL
    from ..runner.verdict import conclude

    if not (run_dir / JOURNAL).exists():
        raise click.ClickException(f"{run_dir}: not a run directory (no {JOURNAL})")
    result = conclude(run_dir, formats)
    if len(result.reports) < len(formats):
        raise click.ClickException(f"{run_dir}: {result.reason}")
    for path in result.reports:
        click.echo(str(path))


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE")
@_targets_option
def validate(files: tuple[Path, ...], variables: tuple[str, ...], targets_file: Path | None) -> None:
    """Check experiment FILES without running them (exit 2 on any error)."""
    from ..experiment.loader import load_experiment

    try:
        overlay = _overlay(targets_file, variables)
    except InputError as exc:
        _fail(exc)
    bad = 0
    for f in files:
        try:
            loaded = load_experiment(f, _vars(variables), overlay)
        except InputError as exc:
            bad += 1
            click.echo(str(exc), err=True)
            continue
        steps = len(loaded.experiment.method)
        click.echo(f"{f}: ok ({steps} step{'s' if steps != 1 else ''}, {len(loaded.experiment.probes)} probes)")
    sys.exit(ExitCode.INVALID_INPUT if bad else ExitCode.OK)


@click.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of experiment files (for editors)."""
    from ..experiment.schema import experiment_schema

    text = json.dumps(experiment_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
    else:
        click.echo(text, nl=False)


@click.command("faults")
@click.option("--json", "as_json", is_flag=True)
def faults_cmd(as_json: bool) -> None:
    """List the fault types, their targets and parameters."""
    from .. import faults

    rows: list[dict[str, Any]] = []
    for name, cls in faults.all_faults().items():
        params = {k: (f.description or "") for k, f in cls.Params.model_fields.items()}
        kinds = sorted(cls.target_kinds) if cls.target_kinds is not None else []
        rows.append({"name": name, "summary": cls.summary, "targets": kinds, "params": params,
                     "reversible": cls.reversible})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        targets = ", ".join(r["targets"]) or "none"
        click.echo(f"{r['name']:<30} {r['summary']}  [targets: {targets}]")
        for p, d in r["params"].items():
            click.echo(f"    {p}: {d}")


@click.command("recover")
@click.option("--run", "run_id", help="Only this run id.")
@click.option("--list", "list_only", is_flag=True, help="Show what would be reverted; revert nothing.")
def recover_cmd(run_id: str | None, list_only: bool) -> None:
    """Revert faults that a dead run left behind (after a SIGKILL or a crash)."""
    from ..runner.ledger import recover, runs

    if list_only:
        for r in runs():
            if run_id and r.run_id != run_id:
                continue
            state = "running" if r.runner_alive() else "dead"
            for e in r.entries():
                click.echo(f"{r.run_id} ({state}): {e.get('fault')} {e.get('status')}")
        from ..faults.settings import Owners

        for rec in Owners().records():
            holders = ", ".join(str(h.get("holder")) for h in rec.get("holders", []))
            click.echo(f"setting {rec.get('key')}: original {rec.get('original')!r}, held by {holders}")
        return
    results = recover(run_id=run_id)
    if not results:
        click.echo("nothing to recover")
        return
    failed = 0
    for res in results:
        if res.error:
            failed += 1
            click.echo(f"FAILED {res.fault} of run {res.run_id}: {res.error}", err=True)
        else:
            click.echo(f"reverted {res.describe} of run {res.run_id}")
    sys.exit(ExitCode.COULD_NOT_RUN if failed else ExitCode.OK)


@click.command("halt")
@click.option("--reason", default="operator halt", show_default=True)
@click.option("--clear", is_flag=True, help="Lift the halt so experiments may run again.")
def halt_cmd(reason: str, clear: bool) -> None:
    """Stop every running experiment on this machine; new runs refuse until --clear."""
    from ..runner import halt

    if clear:
        click.echo("halt cleared" if halt.clear() else "no halt was in force")
        return
    path = halt.halt(reason)
    click.echo(f"halt in force ({path}); running experiments revert and stop within 0.1 s")


@click.group("suite")
def suite_cmd() -> None:
    """Run several experiments in order, with one combined report."""


@suite_cmd.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@_targets_option
def suite_run(file: Path, variables: tuple[str, ...], runs_dir: Path, quiet: bool, targets_file: Path | None) -> None:
    """Run the suite FILE; exit code is the worst of its experiments'."""
    from ..runner.run import RunOptions
    from ..runner.suite import load_suite, run_suite
    from .console import make_console

    loaded = _load(load_suite, file, variables, targets_file)
    class Relay:
        """Forwards records to the console of the experiment that is running."""

        current: Any = None

        def start(self, i: int, name: str) -> None:
            click.secho(f"\n== [{i + 1}/{len(loaded.experiments)}] {name}", bold=True)
            self.current = make_console(loaded.experiments[i][1].experiment, quiet=quiet)

        def on_record(self, r: Record) -> None:
            if self.current is not None:
                self.current.on_record(r)

    relay = Relay()
    code, suite_dir, rows = run_suite(loaded, runs_dir, RunOptions(listeners=[relay.on_record]), relay.start)
    click.echo(f"\nsuite {loaded.suite.name!r}: exit {code}")
    for r in rows:
        click.echo(f"  {r.outcome.upper():<10} {r.name}" + (f"  ({r.reason})" if r.reason and r.exit_code else ""))
    click.echo(f"combined report: {suite_dir / 'suite.md'}")
    sys.exit(code)


@suite_cmd.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE")
@_targets_option
def suite_validate(file: Path, variables: tuple[str, ...], targets_file: Path | None) -> None:
    """Check the suite FILE and every experiment it lists."""
    from ..runner.suite import load_suite

    loaded = _load(load_suite, file, variables, targets_file)
    click.echo(f"{file}: ok ({len(loaded.experiments)} experiments)")


@click.group("import")
def import_cmd() -> None:
    """Turn another tool's experiment into a chaoslab experiment file."""


@import_cmd.command("ctk")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the YAML here (default: standard output).")
def import_ctk(file: Path, output: Path | None) -> None:
    """A Chaos Toolkit experiment FILE as chaoslab YAML (what `chaoslab run FILE` runs)."""
    import yaml

    from ..experiment import ctk
    from ..source import load_document

    try:
        raw = load_document(file, substitute=False)
        if not ctk.is_ctk(raw.data):
            raise InputError("not a Chaos Toolkit experiment (no steady-state-hypothesis or activities)", file=str(file))
        data = ctk.translate(raw, dict(os.environ)).data
    except InputError as exc:
        _fail(exc)
    text = f"# imported from {file} by `chaoslab import ctk`\n" + yaml.safe_dump(data, sort_keys=False, width=100)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
