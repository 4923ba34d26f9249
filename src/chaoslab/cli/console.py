"""Live progress: rich on a terminal, plain lines otherwise, only the verdict with --quiet.

The console is a listener of the runner's records; it never influences the run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..experiment.model import Experiment
from ..records import LoadRecord, Record
from ..runner.verdict import RunResult
from ..units import format_duration

STILL_FAILING_EVERY = 10.0
"""While a probe is failing, a count of its samples is printed this often (record time)."""


@dataclass
class _Episode:
    """What the console last said about one probe, and what it has seen since."""

    failing: bool  # as last printed
    since: float = 0.0  # when the printed state began
    ok_since: float | None = None  # start of the ok streak inside a failing episode
    ok_streak: int = 0
    failed: int = 0  # samples of the episode
    total: int = 0
    window_failed: int = 0  # since the last count line
    window_total: int = 0
    window_start: float = 0.0
    last_error: str | None = None


class PlainConsole:
    """One line per event that matters: phases, faults, probe state changes, stops, aborts.

    A probe is reported by episode, not by sample: "FAILING" when it starts failing, a count
    every ``STILL_FAILING_EVERY`` seconds while it goes on, "ok again" once it has stayed ok for
    a while. A probe that flaps (a CPU throttle makes some answers miss a latency bound) printed
    one line per sample before: thirty identical FAILING lines in a 30 s throttle.
    """

    def __init__(self, exp: Experiment, *, quiet: bool = False) -> None:
        self.exp = exp
        self.quiet = quiet
        self.probe_ok: dict[str, bool] = {}
        self.probe_counts: dict[str, list[int]] = {name: [0, 0] for name in exp.probes}
        self.episodes: dict[str, _Episode] = {}
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
            self.probe_ok[name] = r["ok"]
            self._on_sample(name, t, bool(r["ok"]), r.get("error"))
        elif r["type"] == "load":
            self.load = r
        elif r["type"] == "stop" or r["type"] == "abort":
            self._say(t, f"{r['type']}: {r['reason']}")
        elif r["type"] == "rollback" and not r["ok"]:
            self._say(t, f"rollback[{r['index']}] failed: {r['error']}")

    def _steady_after(self, probe: str) -> float:
        """How long a failing probe must stay ok to be called ok again: 1 s and three samples."""
        spec = self.exp.probes.get(probe)
        every = float(spec.every) if spec is not None else 1.0
        return max(1.0, 2 * every)

    def _on_sample(self, name: str, t: float, ok: bool, error: str | None) -> None:
        ep = self.episodes.get(name)
        if ep is None or (not ep.failing and not ok):  # the first sample, or an episode starts
            ep = self.episodes[name] = _Episode(failing=not ok, since=t, window_start=t)
            self._say(t, f"probe {name} ok" if ok else f"probe {name} FAILING ({error})")
        if not ep.failing:
            return
        ep.total += 1
        ep.window_total += 1
        if ok:
            ep.ok_streak += 1
            ep.ok_since = t if ep.ok_since is None else ep.ok_since
            if ep.ok_streak >= 3 and t - ep.ok_since >= self._steady_after(name):
                failing_for = ep.ok_since - ep.since
                self._say(t, f"probe {name} ok again since {ep.ok_since:.2f}s ({ep.failed} of "
                             f"{ep.total - ep.ok_streak} samples failed in {failing_for:.1f}s)")
                self.episodes[name] = _Episode(failing=False, since=ep.ok_since)
                return
        else:
            ep.ok_since, ep.ok_streak = None, 0
            ep.failed += 1
            ep.window_failed += 1
            ep.last_error = error
        if t - ep.window_start >= STILL_FAILING_EVERY:
            self._say(t, f"probe {name} still failing: {ep.window_failed} of {ep.window_total} samples failed "
                         f"in the last {t - ep.window_start:.0f}s (last: {ep.last_error})")
            ep.window_failed = ep.window_total = 0
            ep.window_start = t

    def verdict(self, result: RunResult) -> None:
        line = f"verdict: {result.outcome.upper()} (exit {result.exit_code})"
        if result.reason:
            line += f" - {result.reason}"
        if result.run_dir is not None:
            line += f"\nrun directory: {result.run_dir}"
        for h in result.analysis.judgement.assertions if result.analysis is not None else []:
            mark = "PASS" if h.passed else "FAIL"
            line += f"\n  {mark} {h.name} = {_value(h.value)} ({_bound(h.bound)})"
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
        self._drawn = 0.0  # record time of the last redraw

    #: What the panel shows changes only with the records (its clock is theirs), so it is redrawn
    #: on a record, not by rich's timer (8 times a second, the same panel between records): at
    #: once for a phase, a fault or a stop, at most this often for samples and load counts. A
    #: redraw costs ~2 ms of CPU, taken from the system under test (bench/watch_cost.py).
    REDRAW_EVERY = 0.5
    URGENT = frozenset({"run", "phase", "fault", "stop", "abort", "end"})

    def __enter__(self) -> RichConsole:
        from rich.live import Live

        self._live = Live(self._render(), console=self.console, auto_refresh=False, transient=True)
        self._live.__enter__()
        self._drawn = 0.0
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
        if self._live is not None and (r["type"] in self.URGENT or self.t - self._drawn >= self.REDRAW_EVERY):
            self._drawn = self.t
            self._live.update(self._render(), refresh=True)

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
