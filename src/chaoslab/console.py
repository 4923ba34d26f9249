"""Live progress: rich on a terminal, plain lines otherwise, only the verdict with --quiet.

The console is a listener of the runner's records; it never influences the run.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from .experiment.model import Experiment
from .records import LoadRecord, Record
from .units import format_duration


class PlainConsole:
    """One line per event that matters: phases, faults, probe state changes, stops, aborts."""

    def __init__(self, exp: Experiment, *, quiet: bool = False) -> None:
        self.exp = exp
        self.quiet = quiet
        self.probe_ok: dict[str, bool] = {}
        self.probe_counts: dict[str, list[int]] = {name: [0, 0] for name in exp.probes}
        self.phase = "starting"
        self.active: dict[str, str] = {}
        self.load: LoadRecord | None = None

    def __enter__(self) -> PlainConsole:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def print_line(self, text: str) -> None:
        print(text, file=sys.stderr if self.quiet else sys.stdout, flush=True)

    def _say(self, t: float, text: str) -> None:
        if not self.quiet:
            self.print_line(f"[{t:7.2f}s] {text}")

    def on_record(self, r: Record) -> None:
        t = r["t"]
        if r["type"] == "run":
            self._say(t, f"run {r['run_id']}: {r['title']}")
        elif r["type"] == "phase":
            self.phase = r["name"]
            self._say(t, f"phase {r['name']}")
        elif r["type"] == "fault":
            action = r["action"]
            key = f"{r['step']}:{r.get('occurrence', 0)}"
            if action == "inject":
                self.active[key] = r["describe"]
            elif action in ("revert", "end"):
                self.active.pop(key, None)
            suffix = f": {r['error']}" if r.get("error") else ""
            self._say(t, f"{action:<7} {r['describe']}{suffix}")
        elif r["type"] == "sample":
            name = r["probe"]
            counts = self.probe_counts.setdefault(name, [0, 0])
            counts[0 if r["ok"] else 1] += 1
            before = self.probe_ok.get(name)
            if before is None or before != r["ok"]:
                state = "ok" if r["ok"] else f"FAILING ({r['error']})"
                self._say(t, f"probe {name} {state}")
            self.probe_ok[name] = r["ok"]
        elif r["type"] == "load":
            self.load = r
        elif r["type"] == "stop" or r["type"] == "abort":
            self._say(t, f"{r['type']}: {r['reason']}")
        elif r["type"] == "rollback" and not r["ok"]:
            self._say(t, f"rollback[{r['index']}] failed: {r['error']}")

    def verdict(self, result: Any) -> None:
        line = f"verdict: {result.outcome.upper()} (exit {result.exit_code})"
        if result.reason:
            line += f" - {result.reason}"
        if result.run_dir is not None:
            line += f"\nrun directory: {result.run_dir}"
        analysis = result.analysis or {}
        for h in analysis.get("hypothesis", []):
            mark = "PASS" if h.get("passed") else "FAIL"
            line += f"\n  {mark} {h.get('name')} = {_value(h.get('value'))} ({_bound(h.get('bound'))})"
        print(line, flush=True)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "unknown" if v is None else str(v)


def _bound(b: Any) -> str:
    if not isinstance(b, dict):
        return f"bound {b}"
    parts = [f"{k} {_value(v)}" for k, v in b.items() if v is not None]
    return ", ".join(parts) or "no bound"


class RichConsole(PlainConsole):
    """A live panel: phase, elapsed/remaining, active faults, probe lanes; events scroll above."""

    def __init__(self, exp: Experiment) -> None:
        super().__init__(exp)
        from rich.console import Console

        self.console = Console()
        self.t = 0.0
        self.total = exp.longest()
        self._live: Any = None

    def __enter__(self) -> RichConsole:
        from rich.live import Live

        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)

    def print_line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _say(self, t: float, text: str) -> None:
        self.console.print(f"[dim]{t:7.2f}s[/dim] {text}", highlight=False)

    def on_record(self, r: Record) -> None:
        self.t = r["t"]
        super().on_record(r)
        if self._live is not None:
            self._live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        remaining = max(0.0, self.total - self.t)
        table.add_row(
            f"[bold]{self.exp.title}[/bold]",
            f"phase [cyan]{self.phase}[/cyan]",
            f"{format_duration(self.t)} elapsed, ~{format_duration(remaining)} left",
        )
        for desc in self.active.values():
            table.add_row("", "[red]active[/red]", desc)
        if self.load is not None:
            ld = self.load
            table.add_row(
                "", "load",
                f"{ld['ok']} ok / {ld['failed']} failed / {ld['timeout']} timed out"
                f" of {ld['scheduled']}, lag {ld['lag'] * 1000:.1f} ms",
            )
        for name, (ok, bad) in self.probe_counts.items():
            state = self.probe_ok.get(name)
            badge = "[green]ok[/green]" if state else ("[red]failing[/red]" if state is False else "…")
            table.add_row("", f"probe {name}", f"{badge}  {ok} ok / {bad} failed")
        return table


def make_console(exp: Experiment, *, quiet: bool = False) -> PlainConsole:
    if quiet:
        return PlainConsole(exp, quiet=True)
    if sys.stdout.isatty():
        return RichConsole(exp)
    return PlainConsole(exp)
