"""One experiment run: baseline -> fault steps at their offsets -> recovery, always reverting.

Data flows one way: every observation goes through ``emit`` into the journal (and to listeners
such as the live console); analysis and reports read only the journal afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import probes as probe_registry
from ..errors import CapabilityError, ChaoslabError, ExitCode, FaultError, LedgerError, TargetError
from ..experiment.loader import LoadedExperiment
from ..faults import Fault
from ..journal import EXPERIMENT, Clock, Journal
from ..observe import Observer, ObserverContext, from_experiment
from ..probes import Probe, ProbeContext, Sample
from ..targets import ResolvedTarget, resolve
from ..verdict import RunResult, conclude
from . import actuate
from . import halt as halt_flag
from .ledger import Ledger, dead_runs, ledger_root, recover
from .plan import PlannedFault, describe_plan, plan

Listener = Callable[[dict[str, Any]], None]




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


@dataclass
class ActiveFault:
    planned: PlannedFault
    fault: Fault[Any]
    entry: str | None
    injected_at: float
    next_tick: float | None


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
        self.active: list[ActiveFault] = []
        self.abort_reason: str | None = None
        self.abort_code: ExitCode = ExitCode.ABORTED
        self.errors: list[str] = []
        self._wake: asyncio.Event | None = None
        self._stop_tasks: asyncio.Event | None = None
        self._failing_since: dict[str, float] = {}
        self.journal: Journal | None = None
        self.ledger: Ledger | None = None
        self.clock = Clock()
        self.run_dir: Path | None = None
        self.t_base = 0.0
        """Journal time of the baseline's start: step offsets, recovery and max_duration count from it
        (observers such as bpftrace may take a second to start before it)."""
        self.t_inject: float | None = None
        self.t_revert: float | None = None
        self.signals: list[int] = []
        self.load: Any = None
        self.observers: list[Observer] = []

    # -- emission -------------------------------------------------------------------------
    def emit(self, type_: str, *, t: float | None = None, **fields: Any) -> None:
        record = {"type": type_, "t": round(self.clock.now() if t is None else t, 6), **fields}
        if self.journal is not None:
            self.journal.write(type_, t=record["t"], **fields)
        for listener in self.opts.listeners:
            with contextlib.suppress(Exception):  # a display bug must never stop a revert
                listener(record)

    # -- pre-flight: everything that can fail before anything is injected ---------------------
    def preflight(self) -> None:
        reason = halt_flag.halted()
        if reason is not None:
            raise LedgerError(f"a halt is in force ({reason}); clear it with `chaoslab halt --clear`")
        dead = dead_runs(self.opts.ledger_root)
        if dead:
            if not self.opts.recover:
                names = ", ".join(r.run_id for r in dead)
                raise LedgerError(
                    f"unreverted faults of a dead run are in the ledger ({names}); "
                    "run `chaoslab recover` (or pass --recover) first"
                )
            for r in recover(self.opts.ledger_root):
                self.opts.print(f"recovered {r.describe} of run {r.run_id}" + (f": FAILED {r.error}" if r.error else ""))
            if dead_runs(self.opts.ledger_root):
                raise LedgerError("some faults of a dead run could not be reverted; see `chaoslab recover`")
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
        self.ledger = Ledger(self.run_id, self.opts.ledger_root or ledger_root())
        try:
            self.ledger.open({"experiment": str(self.loaded.path), "run_dir": str(self.run_dir.resolve())})
        except LedgerError as exc:
            return RunResult(exc.exit_code, "error", str(exc), self.run_dir)

        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop_tasks = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        tasks: list[asyncio.Task[None]] = []
        try:
            self.emit("run", run_id=self.run_id, title=self.exp.title, started_at=self.clock.wall0,
                      experiment=str(self.loaded.path), pid=os.getpid())
            await self._start_observers()
            self._watch_containers()
            self.t_base = self.clock.now()
            self.emit("phase", name="baseline")
            tasks = await self._start_background()
            await self._timeline()
        except ChaoslabError as exc:
            self._abort(str(exc), exc.exit_code)
        except Exception as exc:  # a bug of ours: revert first, then report it
            self._abort(f"internal error: {type(exc).__name__}: {exc}", ExitCode.COULD_NOT_RUN)
            self.emit("error", traceback=traceback.format_exc())
        finally:
            await asyncio.shield(self._teardown(tasks))
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return self._finish()

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        self.signals.append(sig)
        if len(self.signals) > 1:
            self.opts.print(f"{name} again: still reverting faults, please wait")
            return
        self._abort(f"interrupted by {name}", ExitCode.ABORTED)

    def _abort(self, reason: str, code: ExitCode) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            self.abort_code = code
            self.emit("abort", reason=reason, exit_code=int(code))
        if self._wake is not None:
            self._wake.set()

    def plan_now(self) -> float:
        """Seconds since the baseline started: the axis of ``at``, ``duration`` and ``recovery``."""
        return self.clock.now() - self.t_base

    async def _sleep_until(self, t: float) -> bool:
        """Sleep until plan time ``t``; False if the run was aborted meanwhile."""
        assert self._wake is not None
        delay = t - self.plan_now()
        if self.abort_reason is not None:
            return False
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        return self.abort_reason is None

    async def _timeline(self) -> None:
        pending = list(self.plan)
        while pending or self.active:
            next_inject = pending[0].at if pending else float("inf")
            next_revert = min((a.planned.end for a in self.active), default=float("inf"))
            next_tick = min((a.next_tick for a in self.active if a.next_tick is not None), default=float("inf"))
            t = min(next_inject, next_revert, next_tick)
            if not await self._sleep_until(t):
                return
            now = self.plan_now()
            for a in [a for a in self.active if a.planned.end <= now]:
                await self._revert(a)
            for a in self.active:
                if a.next_tick is not None and a.next_tick <= now:
                    await self._tick(a)
            while pending and pending[0].at <= now:
                await self._inject(pending.pop(0))
                if self.abort_reason is not None:
                    return
        if self.t_revert is None:
            self.t_revert = self.clock.now()
            self.emit("phase", name="recovery")
        await self._sleep_until(self.t_revert - self.t_base + self.exp.recovery)

    async def _inject(self, p: PlannedFault) -> None:
        assert self.ledger is not None
        target = None
        if p.target is not None:
            spec = self.exp.targets[p.target]
            target = await asyncio.to_thread(resolve, p.target, spec, stack_file=self.loaded.stack_file())
            self.targets[p.target] = target
        fault = p.cls(p.params, target, run_id=self.run_id)
        now = self.plan_now()
        active = ActiveFault(p, fault, None, now, now + fault.interval if fault.interval else None)
        if p.cls.reversible or p.duration:
            self.active.append(active)  # before injecting: a failed injection is reverted too
        if self.t_inject is None:
            self.t_inject = self.clock.now()
            self.emit("phase", name="fault")
        assert self.ledger is not None

        def keep(entry: str | None) -> None:
            active.entry = entry

        try:
            await asyncio.to_thread(actuate.inject, fault, self.ledger, keep)
        except (ChaoslabError, OSError) as exc:
            self.emit("fault", action="error", step=p.step, fault=p.cls.name, target=p.target,
                      describe=fault.describe(), error=str(exc))
            raise FaultError(f"could not inject {fault.describe()}: {exc}") from None
        self.emit("fault", action="inject", step=p.step, occurrence=p.occurrence, fault=p.cls.name,
                  target=p.target, describe=fault.describe(), state=fault.state)

    async def _tick(self, a: ActiveFault) -> None:
        try:
            acted = await asyncio.to_thread(a.fault.tick)
            if acted is not False:
                self.emit("fault", action="tick", step=a.planned.step, fault=a.planned.cls.name,
                          target=a.planned.target, describe=a.fault.describe())
        except (ChaoslabError, OSError) as exc:
            self.emit("fault", action="error", step=a.planned.step, fault=a.planned.cls.name,
                      target=a.planned.target, describe=a.fault.describe(), error=str(exc))
        assert a.fault.interval is not None and a.next_tick is not None
        a.next_tick += a.fault.interval

    async def _revert(self, a: ActiveFault) -> bool:
        self.active.remove(a)
        p = a.planned
        ok = True
        if p.cls.reversible:
            assert self.ledger is not None
            try:
                await asyncio.to_thread(actuate.revert, a.fault, self.ledger, a.entry)
            except Exception as exc:
                ok = False
                msg = f"could not revert {a.fault.describe()}: {exc}; it stays in the ledger, see `chaoslab recover`"
                self.errors.append(msg)
                self.emit("fault", action="error", step=p.step, fault=p.cls.name, target=p.target,
                          describe=a.fault.describe(), error=msg)
        self.emit("fault", action="revert" if p.cls.reversible else "end", step=p.step,
                  occurrence=p.occurrence, fault=p.cls.name, target=p.target, describe=a.fault.describe())
        more_planned = any(q.at > self.plan_now() for q in self.plan) and self.abort_reason is None
        if not self.active and self.t_inject is not None and self.t_revert is None and not more_planned:
            self.t_revert = self.clock.now()
            self.emit("phase", name="recovery")
        return ok

    # -- observers: they watch, they never decide ------------------------------------------
    async def _start_observers(self) -> None:
        observers = list(self.opts.observers)
        if self.exp.observe:

            observers += from_experiment(self.exp.observe)
        assert self.run_dir is not None
        ctx = ObserverContext(self.run_id, self.run_dir, self.clock, self.exp, self.targets, self.emit)
        for obs in observers:
            try:
                await obs.start(ctx)
            except Exception as exc:  # an observer that cannot start is skipped, never fatal
                self.emit("observer", action="skipped", observer=type(obs).__name__, reason=str(exc))
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
                self.emit("observer", action="error", observer=type(obs).__name__, reason=str(exc))

    # -- background: probes, load, halt, deadline ------------------------------------------
    async def _start_background(self) -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(self._watch_halt_and_deadline(), name="watch")]
        context = ProbeContext(targets=self.targets)
        for name, spec in self.exp.probes.items():
            probe = probe_registry.build(name, spec, context)
            tasks.append(asyncio.create_task(self._probe_loop(probe, spec.every), name=f"probe:{name}"))
        if self.exp.load is not None:
            from ..journal import HISTORY
            from ..load import LoadGenerator

            assert self.run_dir is not None
            self.load = LoadGenerator(self.exp.load, self.clock, self.run_dir / HISTORY)
            assert self._stop_tasks is not None
            tasks.append(asyncio.create_task(self._guard(self.load.run(self._stop_tasks), "load generator"), name="load"))
        return tasks

    async def _guard(self, coro: Any, what: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._abort(f"{what} failed: {type(exc).__name__}: {exc}", ExitCode.COULD_NOT_RUN)

    async def _watch_halt_and_deadline(self) -> None:
        assert self._stop_tasks is not None
        next_stats = self.clock.now() + 1.0
        while not self._stop_tasks.is_set():
            if self.load is not None and self.clock.now() >= next_stats:
                next_stats += 1.0  # a once-a-second summary for the console and the journal
                self.emit("load", **self.load.stats())
            reason = halt_flag.halted()
            if reason is not None:
                self._abort(f"halted: {reason}", ExitCode.ABORTED)
            if self.plan_now() >= self.exp.max_duration:
                self._abort(f"max_duration {self.exp.max_duration:g}s reached", ExitCode.ABORTED)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_tasks.wait(), 0.1)

    async def _probe_loop(self, probe: Probe, every: float) -> None:
        assert self._stop_tasks is not None
        try:
            await probe.start()
            k = 0
            start = self.clock.now()
            while not self._stop_tasks.is_set():
                t = self.clock.now()
                sample = await probe.sample()
                self.emit("sample", t=round(t, 6), probe=probe.name, **sample.to_dict())
                self._check_stop_conditions(probe.name, sample, t)
                k += 1
                # fixed schedule (no drift); a slow probe skips the slots it missed
                nxt = start + k * every
                now = self.clock.now()
                if nxt < now:
                    k = int((now - start) / every) + 1
                    nxt = start + k * every
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_tasks.wait(), max(0.0, nxt - now))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # even sys.exit() in a user's probe must not skip the reverts
            self._abort(f"probe {probe.name!r} crashed: {type(exc).__name__}: {exc}", ExitCode.COULD_NOT_RUN)
        finally:
            with contextlib.suppress(Exception):
                await probe.close()

    def _check_stop_conditions(self, probe: str, sample: Sample, t: float) -> None:
        conditions = [c for c in self.exp.stop_conditions if c.probe == probe]
        if not conditions:
            return
        if sample.ok:
            self._failing_since.pop(probe, None)
            return
        since = self._failing_since.setdefault(probe, t)
        for c in conditions:
            if t - since >= c.failing_for:
                reason = f"stop condition: probe {probe!r} failing for {t - since:.1f}s (limit {c.failing_for:g}s)"
                if self.abort_reason is None:
                    self.emit("stop", condition=probe, reason=reason)
                self._abort(reason, ExitCode.ABORTED)

    # -- teardown: runs on every path -----------------------------------------------------
    async def _teardown(self, tasks: list[asyncio.Task[None]]) -> None:
        for a in reversed(list(self.active)):
            await self._revert(a)
        for i, rb in enumerate(self.exp.rollbacks):
            await self._rollback(i, rb)
        if self.t_inject is not None and self.t_revert is None:
            self.t_revert = self.clock.now()
            self.emit("phase", name="recovery")
        if self._stop_tasks is not None:
            self._stop_tasks.set()
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=5.0)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        await self._stop_observers()
        self._copy_stack_events()
        self._copy_container_events()
        if self.exp.verify is not None and not self.signals and halt_flag.halted() is None:
            from ..analysis.verify import final_read

            assert self.run_dir is not None
            self.emit("phase", name="verify")
            try:
                await final_read(self.exp.verify, self.run_dir)
            except Exception as exc:
                self.emit("error", what="verify", error=f"{type(exc).__name__}: {exc}")
        self.emit("phase", name="end")
        self.emit("end", errors=list(self.errors))
        if self.ledger is not None:
            self.ledger.close()

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
                self.emit("error", what="stack events", error=str(exc))
                continue
            for ev in events:
                fields = {k: v for k, v in ev.items() if k not in ("time", "event")}
                self.emit("event", t=float(ev["time"]) - self.clock.wall0, source="stack",
                          kind=ev.get("event"), **fields)

    def _watch_containers(self) -> None:
        """Record Docker's events of the targeted containers from now on (see EventRecorder). By id
        and by name: a container recreated under the same name is reported too."""
        refs = sorted({ref for t in self.targets.values() for c in t.extra.get("containers") or []
                       for ref in (c["id"], c["name"])})
        if not refs:
            return
        from ..platforms import docker

        try:
            self._docker_events = docker.EventRecorder(refs, self.clock.wall0).start()
        except Exception as exc:
            self.emit("error", what="container events", error=f"{type(exc).__name__}: {exc}")

    def _copy_container_events(self) -> None:
        """Docker's die/start/restart/oom/health events of the targeted containers, on the run's clock."""
        recorder = getattr(self, "_docker_events", None)
        if recorder is None:
            return
        try:
            events = recorder.stop(time.time())
        except Exception as exc:  # the daemon went away: the run's own records still stand
            self.emit("error", what="container events", error=f"{type(exc).__name__}: {exc}")
            return
        for ev in events:
            fields = {k: v for k, v in ev.items() if k not in ("time", "event")}
            self.emit("event", t=float(ev["time"]) - self.clock.wall0, source="docker", kind=ev["event"], **fields)

    async def _rollback(self, index: int, rb: Any) -> None:
        from ..probes.command import CommandExpect, CommandProbe
        from ..probes.http import HttpExpect, HttpProbe

        probe: Probe
        if rb.command:
            from ..experiment.model import CommandProbeSpec

            probe = CommandProbe(f"rollback[{index}]", CommandProbeSpec(argv=rb.command), CommandExpect(),
                                 rb.timeout, ProbeContext({}))
        else:
            probe = HttpProbe(f"rollback[{index}]", rb.http, HttpExpect(), rb.timeout, ProbeContext({}))
        await probe.start()
        try:
            sample = await probe.sample()
        finally:
            await probe.close()
        self.emit("rollback", index=index, **sample.to_dict())
        if not sample.ok:
            self.errors.append(f"rollback[{index}] failed: {sample.error}")

    def _finish(self) -> RunResult:
        assert self.journal is not None and self.run_dir is not None
        self.journal.close()
        return conclude(self.run_dir, self.opts.reports)


def run_experiment(loaded: LoadedExperiment, options: RunOptions | None = None) -> RunResult:
    """Run synchronously on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(Run(loaded, options).execute())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(Run(loaded, options).execute())
