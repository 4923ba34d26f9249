"""One experiment run: baseline -> fault steps at their offsets -> recovery, always reverting.

The run ends when its journal is closed: every observation goes through ``emit`` into the
journal (and to listeners such as the live console). Its parts: the timeline (runner/timeline.py:
inject, tick, revert), the watcher (runner/watcher.py: probes, stop conditions, halt, deadline),
the final read (runner/finalread.py). ``run_experiment`` then hands the closed run directory to
the one verdict step (runner/verdict.py: analyze -> verdict -> summary -> reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import secrets
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from ..errors import CapabilityError, ChaoslabError, ExitCode, LedgerError, TargetError
from ..experiment.loader import LoadedExperiment
from ..journal import EXPERIMENT, HISTORY, Journal, RunClock
from ..observe import Observer, ObserverContext, from_experiment
from ..probes import Probe, ProbeContext
from ..records import Record, RollbackRecord, record
from ..targets import EventRecorder, ResolvedTarget, resolve
from . import halt as halt_flag
from .control import Control
from .ledger import Ledger, ledger_root, refuse_dead_runs
from .plan import describe_plan, plan
from .platform_events import as_records, start_recorders, stop_recorders
from .timeline import Timeline
from .verdict import RunResult, conclude
from .watcher import Watcher

if TYPE_CHECKING:
    from .evidence import Evidence

Listener = Callable[[Record], None]


@dataclass
class RunOptions:
    run_root: Path = Path("chaoslab-runs")
    dry_run: bool = False
    recover: bool = False
    reports: tuple[str, ...] = ("md", "html", "junit", "json")
    ledger_root: Path | None = None
    listeners: list[Listener] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    print: Callable[[str], None] = print
    signalled: Callable[[], int | None] = lambda: None
    """A signal that arrived before the runner's own handlers were in place and was not acted on
    yet (the CLI's start-up handler records it): the run aborts on it at once."""


def new_run_id(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:32] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


class Run:
    def __init__(self, loaded: LoadedExperiment, options: RunOptions | None = None) -> None:
        self.loaded = loaded
        self.exp = loaded.experiment
        self.opts = options or RunOptions()
        self.run_id = new_run_id(self.exp.title)
        self.plan = plan(self.exp)
        self.targets: dict[str, ResolvedTarget] = {}
        self.unresolved: dict[str, str] = {}
        self.errors: list[str] = []
        self.journal: Journal | None = None
        self.clock = RunClock()
        self.control = Control(self.clock, self.emit)
        self.run_dir: Path | None = None
        self.timeline: Timeline | None = None
        self.evidence: Evidence | None = None
        self.signals: list[int] = []
        self.observers: list[Observer] = []
        self._recorders: list[EventRecorder] = []

    # -- emission -------------------------------------------------------------------------
    def emit(self, rec: Record) -> None:
        if self.journal is not None:
            self.journal.append(rec)
        if self.evidence is not None:
            self.evidence.on_record(rec)
        for listener in self.opts.listeners:
            with contextlib.suppress(Exception):  # a display bug must never stop a revert
                listener(copy.copy(rec))

    # -- pre-flight: everything that can fail before anything is injected ---------------------
    def preflight(self) -> None:
        reason = halt_flag.halted()
        if reason is not None:
            raise LedgerError(f"a halt is in force ({reason}); clear it with `chaoslab halt --clear`")
        refuse_dead_runs(self.opts.ledger_root, recover_first=self.opts.recover, say=self.opts.print)
        stack_file = self.loaded.stack_file()
        if stack_file is not None and not self.opts.dry_run:
            from ..stack import Stack

            # `up` returns at once when the stack is already up and healthy
            Stack.load(stack_file).up()
        for name, spec in self.exp.targets.items():
            try:
                self.targets[name] = resolve(name, spec, stack_file=stack_file)
            except TargetError as exc:
                # A dry run touches nothing, so a stack that is not up cannot resolve its services
                # yet: say so in the plan instead of bringing the stack up.
                if not (self.opts.dry_run and spec.kind == "service"):
                    raise
                self.unresolved[name] = f"service {spec.service} (not resolved: {exc})"
        for p in self.plan:
            p.cls.check()

    def describe_plan(self) -> list[str]:
        shown = {n: t.describe() for n, t in self.targets.items()}
        return describe_plan(self.exp, self.plan, {**shown, **self.unresolved})

    # -- the run --------------------------------------------------------------------------
    async def execute(self) -> RunResult:
        """The run, then its verdict."""
        result = await self.record()
        if result is not None:
            return result
        assert self.run_dir is not None
        return conclude(self.run_dir, self.opts.reports)

    async def record(self) -> RunResult | None:
        """Everything up to the closed journal; a result only when the run never started."""
        try:
            self.preflight()
        except (TargetError, CapabilityError, LedgerError) as exc:
            return RunResult(exc.exit_code, "error", str(exc))
        if self.opts.dry_run:
            for line in self.describe_plan():
                self.opts.print(line)
            return RunResult(ExitCode.HELD, "dry-run")

        self.run_dir = self.opts.run_root / self.run_id
        self.journal = Journal(self.run_dir, self.clock)
        self.journal.write_json(
            EXPERIMENT,
            {"path": str(self.loaded.path), "run_id": self.run_id,
             "experiment": self.exp.model_dump(mode="json")},
        )
        ledger = Ledger(self.run_id, self.opts.ledger_root or ledger_root())
        try:
            ledger.open({"experiment": str(self.loaded.path), "run_dir": str(self.run_dir.resolve())})
        except LedgerError as exc:
            return RunResult(exc.exit_code, "error", str(exc), self.run_dir)
        if self.exp.ends_on_evidence:
            # imported here: it imports the analysis, which only runs that end on evidence need
            from .evidence import Evidence

            history = self.run_dir / HISTORY if self.exp.load is not None else None
            self.evidence = Evidence(history, self.exp.probes)
        self.timeline = Timeline(self.control, self.exp, self.plan, ledger, run_id=self.run_id,
                                 targets=self.targets, stack_file=self.loaded.stack_file(),
                                 evidence=self.evidence)
        watcher = Watcher(self.control, self.exp, self.targets, self.run_dir)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            self.emit({"type": "run", "t": self.control.now(), "run_id": self.run_id, "title": self.exp.title,
                       "started_at": self.clock.wall0, "experiment": str(self.loaded.path), "pid": os.getpid(),
                       "process_started_at": process_started_at()})
            early = self.opts.signalled()
            if early is not None:  # before anything is injected: the run aborts at once
                self._on_signal(early)
            await self._start_observers()
            self._watch_platforms()
            await watcher.prepare()
            self.control.t_base = self.clock.now()
            self._phase("baseline")
            watcher.start()
            await self.timeline.run()
        except ChaoslabError as exc:
            self.control.abort(str(exc), exc.exit_code)
        except Exception as exc:  # a bug of ours: revert first, then report it
            self.control.abort(f"internal error: {type(exc).__name__}: {exc}", ExitCode.COULD_NOT_RUN)
            self.emit({"type": "error", "t": self.control.now(), "traceback": traceback.format_exc()})
        finally:
            await asyncio.shield(self._teardown(watcher))
            ledger.close()
            self.journal.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return None

    def _phase(self, name: Any) -> None:
        self.control.phase(name)

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        self.signals.append(sig)
        if len(self.signals) > 1:
            self.opts.print(f"{name} again: still reverting faults, please wait")
            return
        self.control.abort(f"interrupted by {name}", ExitCode.ABORTED)

    # -- observers: they watch, they never decide ------------------------------------------
    async def _start_observers(self) -> None:
        observers = list(self.opts.observers)
        if self.exp.observe:
            observers += from_experiment(self.exp.observe)
        assert self.run_dir is not None

        def emit(type_: Any, *, t: float | None = None, **fields: Any) -> None:
            self.emit(record(type_, self.clock.now() if t is None else t, **fields))

        ctx = ObserverContext(self.run_id, self.run_dir, self.clock, self.exp, self.targets, emit)
        for obs in observers:
            try:
                await obs.start(ctx)
            except Exception as exc:  # an observer that cannot start is skipped, never fatal
                self.emit({"type": "observer", "t": self.control.now(), "action": "skipped",
                           "observer": type(obs).__name__, "reason": str(exc)})
                continue
            self.observers.append(obs)
            on_record = getattr(obs, "on_record", None)
            if on_record is not None:
                self.opts.listeners.append(on_record)

    async def _stop_observers(self) -> None:
        for obs in reversed(self.observers):
            try:
                await asyncio.wait_for(obs.stop(), 30)
            except Exception as exc:
                self.emit({"type": "observer", "t": self.control.now(), "action": "error",
                           "observer": type(obs).__name__, "reason": str(exc)})

    # -- teardown: runs on every path -----------------------------------------------------
    async def _teardown(self, watcher: Watcher) -> None:
        timeline = self.timeline
        assert timeline is not None
        await timeline.revert_all()
        for i, rb in enumerate(self.exp.rollbacks):
            await self._rollback(i, rb)
        if timeline.t_inject is not None:
            timeline.recovery_starts()
        await watcher.stop()
        await self._stop_observers()
        self._copy_stack_events()
        self._copy_platform_events()
        if self.exp.verify is not None and not self.signals and halt_flag.halted() is None:
            from .finalread import final_read

            assert self.run_dir is not None
            self._phase("verify")
            try:
                await final_read(self.exp.verify, self.run_dir)
            except Exception as exc:
                self._error("verify", f"{type(exc).__name__}: {exc}")
        self._phase("end")
        self.emit({"type": "end", "t": self.control.now(), "errors": timeline.errors + self.errors})

    def _error(self, what: str, error: str) -> None:
        self.emit({"type": "error", "t": self.control.now(), "what": what, "error": error})

    def _copy_stack_events(self) -> None:
        """The stack's exits, restarts and health changes during the run, on the run's clock."""
        # each service target's stack (resolved like the target: its own, else the experiment's,
        # else the single running one), plus the experiment's stack
        default = self.loaded.stack_file()
        stack_files = {t.spec.get("stack") or default for t in self.targets.values() if t.kind == "service"}
        if default is not None:
            stack_files.add(default)
        if not stack_files:
            return
        from ..stack import events_between

        now = time.time()
        for stack_file in stack_files:
            try:
                events = events_between(stack_file, self.clock.wall0, now)
            except ChaoslabError as exc:
                self._error("stack events", str(exc))
                continue
            for rec in as_records(events, self.clock.wall0, "stack"):
                self.emit(rec)

    def _watch_platforms(self) -> None:
        """Record the platforms' own events about the targets from now on (Docker's die, start,
        restart, oom, health events of the targeted containers)."""
        self._recorders = start_recorders(list(self.targets.values()), self.clock.wall0, self._platform_error)

    def _copy_platform_events(self) -> None:
        """What the platforms saw during the run, on the run's clock."""
        for rec in stop_recorders(self._recorders, time.time(), self.clock.wall0, self._platform_error):
            self.emit(rec)

    def _platform_error(self, what: str, exc: BaseException) -> None:
        self._error(what, f"{type(exc).__name__}: {exc}")

    async def _rollback(self, index: int, rb: Any) -> None:
        from ..probes.command import CommandExpect, CommandProbe
        from ..probes.http import HttpExpect, HttpProbe

        probe: Probe[Any, Any]
        if rb.command:
            from ..probes.command import CommandProbeSpec

            probe = CommandProbe(f"rollback[{index}]", CommandProbeSpec(argv=rb.command), CommandExpect(),
                                 rb.timeout, ProbeContext({}))
        else:
            probe = HttpProbe(f"rollback[{index}]", rb.http, HttpExpect(), rb.timeout, ProbeContext({}))
        await probe.start()
        try:
            sample = await probe.sample()
        finally:
            await probe.close()
        rec: RollbackRecord = {"type": "rollback", "t": self.control.now(), "index": index, "ok": sample.ok,
                               "value": sample.value, "latency": sample.latency, "error": sample.error}
        self.emit(rec)
        if not sample.ok:
            self.errors.append(f"rollback[{index}] failed: {sample.error}")


def process_started_at() -> float:
    """When this process started (epoch seconds), to within a clock tick (10 ms).

    Not psutil's ``create_time()``: it adds the start's ticks to the boot time that /proc/stat
    gives in whole seconds, so every process on a machine looks up to 1 s older than it is (0.41 s
    on the machine of bench/watch_cost.py: that much of the start-up it reported was this). The
    kernel counts a process's start in ticks since boot (CLOCK_BOOTTIME), so the distance from
    now is exact to a tick."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22, after the command name
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        return psutil.Process().create_time()


def run_experiment(loaded: LoadedExperiment, options: RunOptions | None = None) -> RunResult:
    """Run synchronously on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(Run(loaded, options).execute())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(Run(loaded, options).execute())
