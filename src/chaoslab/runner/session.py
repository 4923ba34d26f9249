"""Faults injected from code (tests, notebooks), recorded exactly like an experiment run.

    with ChaosSession(run_dir, "api survives a db pause") as chaos:
        load = chaos.load(url="http://127.0.0.1:8080/orders", method="POST", rate=100)
        time.sleep(2)                                  # baseline
        with chaos.fault("process.pause", {"service": "db"}):
            time.sleep(3)
        time.sleep(3)                                  # recovery
    analysis = chaos.analysis                          # same metrics as `chaoslab run`
    chaos.result.outcome                               # and the same verdict step

The ledger protects every fault exactly as in a run; the journal has the same records, so the
analysis, the reports and `chaoslab report` work on it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from .. import faults
from ..analysis import analyze
from ..analysis.model import Analysis
from ..analysis.windows import RECOVERED_AFTER
from ..errors import ChaoslabError
from ..faults import Fault
from ..journal import EXPERIMENT, HISTORY, Journal, RunClock
from ..records import PhaseName
from ..targets import ResolvedTarget, TargetSpec, resolve
from . import actuate
from .ledger import Ledger, refuse_dead_runs
from .platform_events import events_between
from .run import new_run_id
from .verdict import RunResult, conclude

TargetLike = ResolvedTarget | TargetSpec | dict[str, Any] | int | str | None


class DryRun(Exception):
    """Raised by ``fault()`` in a dry-run session instead of injecting; carries the plan line."""


class LoadHandle:
    """An open-model load generator running in a thread of its own, on the session's clock."""

    def __init__(self, spec: Any, clock: RunClock, history: Path) -> None:
        from ..load import LoadGenerator

        self.generator = LoadGenerator(spec, clock, history)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="chaoslab-load", daemon=True)
        self._thread.start()
        self._ready.wait(60)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def go() -> None:
            self._stop = asyncio.Event()
            try:
                await self.generator.prepare(self._stop)  # its worker processes, so load() returns with load
            finally:
                self._ready.set()
            await self.generator.run(self._stop)

        try:
            self._loop.run_until_complete(go())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc
        finally:
            self._ready.set()

    def stats(self) -> dict[str, Any]:
        return self.generator.stats()

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._error is not None:
            raise ChaoslabError(f"the load generator failed: {self._error}") from self._error


class ChaosSession:
    def __init__(self, run_dir: Path, title: str, *, stack_file: str | None = None, dry_run: bool = False,
                 ledger_root: Path | None = None, reports: tuple[str, ...] = ()) -> None:
        self.title = title
        self.run_id = new_run_id(title)
        self.run_dir = run_dir
        self.stack_file = stack_file
        self.dry_run = dry_run
        self.clock = RunClock()
        self.plan: list[str] = []
        self.reports = reports
        self.result: RunResult | None = None
        """The verdict, once the session has finished (as ``chaoslab run`` would decide it)."""
        self.analysis: Analysis | None = None
        self._active = 0
        self._injected = False
        self._last_revert: float | None = None  # session clock, when the last active fault ended
        self._loads: list[LoadHandle] = []
        self._stopped_cpu = 0.0  # CPU seconds of the load workers of stopped loads
        self._load_spec: dict[str, Any] | None = None
        self._journal: Journal | None = None
        self._ledger = Ledger(self.run_id, ledger_root)
        self._ledger_root = ledger_root
        self._targets: list[ResolvedTarget] = []

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> ChaosSession:
        refuse_dead_runs(self._ledger_root, recover_first=None)
        self._journal = Journal(self.run_dir, self.clock)
        if not self.dry_run:
            self._ledger.open({"session": self.title, "run_dir": str(self.run_dir)})
        self._journal.append({"type": "run", "t": self._now(), "run_id": self.run_id, "title": self.title,
                              "started_at": self.clock.wall0})
        self._phase(self._journal, "baseline")
        return self

    def _now(self) -> float:
        return round(self.clock.now(), 6)

    def _phase(self, journal: Journal, name: PhaseName) -> None:
        # and its load workers' (load(workers=N)), those stopped included
        cpu = time.process_time() + self._stopped_cpu + sum(h.generator.worker_cpu() for h in self._loads)
        journal.append({"type": "phase", "t": self._now(), "name": name, "cpu": round(cpu, 6)})

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.finish()

    def finish(self) -> Analysis | None:
        if self._journal is None:
            return self.analysis
        for handle in self._loads:
            handle.stop()
            self._stopped_cpu += handle.generator.worker_cpu()
        self._loads.clear()
        journal, self._journal = self._journal, None
        self._copy_platform_events(journal)
        self._phase(journal, "end")
        journal.append({"type": "end", "t": self._now(), "errors": []})  # a failed revert raised to the caller
        experiment: dict[str, Any] = {"title": self.title, "method": [], "probes": {}, "load": self._load_spec}
        journal.write_json(EXPERIMENT, {"path": None, "run_id": self.run_id, "experiment": experiment})
        journal.close()
        if not self.dry_run:
            self._ledger.close()
        self.result = conclude(self.run_dir, self.reports)
        self.analysis = self.result.analysis
        return self.analysis

    def _copy_platform_events(self, journal: Journal) -> None:
        """What the platforms saw of the targets the session's faults touched (Docker's events
        of their containers), as the runner records it."""
        if not self._targets:
            return

        def error(what: str, exc: BaseException) -> None:  # the session's own records still stand
            journal.append({"type": "error", "t": self._now(), "what": what, "error": f"{type(exc).__name__}: {exc}"})

        for rec in events_between(self._targets, self.clock.wall0, time.time(), error):
            journal.append(rec)

    # -- faults -------------------------------------------------------------------------
    def resolve(self, target: TargetLike) -> ResolvedTarget | None:
        if target is None or isinstance(target, ResolvedTarget):
            return target
        if isinstance(target, int):
            spec = TargetSpec(pid=target)
        elif isinstance(target, str):
            spec = TargetSpec(service=target)
        elif isinstance(target, TargetSpec):
            spec = target
        else:
            spec = TargetSpec.model_validate(target)
        name = spec.service or spec.proxy or spec.process or str(spec.pid or spec.kind)
        return resolve(name, spec, stack_file=self.stack_file)

    @contextlib.contextmanager
    def fault(self, name: str, target: TargetLike = None, *, duration: float | None = None,
              **params: Any) -> Iterator[Fault[Any]]:
        """Inject ``name`` on ``target`` while the ``with`` block runs; revert at its end, or after
        ``duration`` seconds if that comes first (the block may go on observing the recovery)."""
        assert self._journal is not None, "use the session as a context manager"
        cls = faults.get(name)
        fault = cls(cls.Params.model_validate(params), self.resolve(target), run_id=self.run_id)
        fault.planned_duration = duration
        if fault.target is not None:
            self._targets.append(fault.target)
        if self.dry_run:
            line = f"would inject {fault.describe()}" + (f" for {duration:g}s" if duration else "")
            self.plan.append(line)
            raise DryRun(line)
        cls.check()
        journal = self._journal
        entry: list[str | None] = [None]
        once = threading.Lock()
        ended = False
        target_name = fault.target.name if fault.target else None

        def end() -> None:
            nonlocal ended
            with once:
                if ended:
                    return
                ended = True
                try:
                    actuate.revert(fault, self._ledger, entry[0])
                finally:
                    self._active -= 1
                    journal.append({"type": "fault", "t": self._now(), "action": "revert" if cls.reversible else "end",
                                    "step": 0, "fault": name, "target": target_name, "describe": fault.describe()})
                    if self._active == 0:
                        self._last_revert = self._now()
                        self._phase(journal, "recovery")

        if not self._injected:
            self._injected = True
            self._phase(journal, "fault")
        self._active += 1
        timer = threading.Timer(duration, end) if duration is not None else None
        try:
            actuate.inject(fault, self._ledger, lambda e: entry.__setitem__(0, e))
            journal.append({"type": "fault", "t": self._now(), "action": "inject", "step": 0, "fault": name,
                            "target": target_name, "describe": fault.describe(), "state": fault.state})
            if timer is not None:
                timer.daemon = True
                timer.start()
            yield fault
        finally:
            if timer is not None:
                timer.cancel()
            end()

    def wait_for_recovery(self, timeout: float) -> float | None:
        """Block until what the session has recorded so far shows the recovery from its faults, by
        the analysis's own rule (GUIDE §4: three good 1 s windows after the last revert), or until
        ``timeout`` seconds have passed; returns the time to recovery, or None if not (yet) seen.

        Call it after the faults, with the load still running, instead of a fixed sleep: a sleep is
        long on a quiet machine and too short on a busy one, where the session would end just
        before the recovery it was about to show."""
        deadline = time.monotonic() + timeout
        previous: float | None = None
        while True:
            ready = (self._journal is not None and self._active == 0 and self._last_revert is not None
                     and self._now() - self._last_revert >= RECOVERED_AFTER + 1)
            ttr = analyze(self.run_dir).metrics.get("time_to_recovery") if ready else None
            if ttr is not None and previous is not None:
                return float(ttr)  # seen twice, 1 s apart: the window that was still filling agrees
            previous = ttr
            if time.monotonic() >= deadline:
                return None
            time.sleep(1.0 if ttr is not None else 0.5)

    # -- load ---------------------------------------------------------------------------
    def load(self, *, workers: int | None = None, **http: Any) -> LoadHandle:
        """Start an HTTP load (the keys of ``load: {http: ...}`` in an experiment; ``workers`` as
        ``load.workers``)."""
        from ..experiment.workload import LoadSpec

        spec = LoadSpec.model_validate({"http": http, "workers": workers})
        self._load_spec = spec.model_dump(mode="json")
        handle = LoadHandle(spec, self.clock, self.run_dir / HISTORY)
        self._loads.append(handle)
        return handle
