"""Faults injected from code (tests, notebooks), recorded exactly like an experiment run.

    with ChaosSession(run_dir, "api survives a db pause") as chaos:
        load = chaos.load(url="http://127.0.0.1:8080/orders", method="POST", rate=100)
        time.sleep(2)                                  # baseline
        with chaos.fault("process.pause", {"service": "db"}):
            time.sleep(3)
        time.sleep(3)                                  # recovery
    analysis = chaos.analysis                          # same metrics as `chaoslab run`

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
from ..errors import ChaoslabError, LedgerError
from ..faults import Fault
from ..journal import EXPERIMENT, HISTORY, SUMMARY, Clock, Journal
from ..targets import ResolvedTarget, TargetSpec, resolve
from . import actuate
from .ledger import Ledger, dead_runs
from .run import new_run_id

TargetLike = ResolvedTarget | TargetSpec | dict[str, Any] | int | str | None


class DryRun(Exception):
    """Raised by ``fault()`` in a dry-run session instead of injecting; carries the plan line."""


class LoadHandle:
    """An open-model load generator running in a thread of its own, on the session's clock."""

    def __init__(self, spec: Any, clock: Clock, history: Path) -> None:
        from ..load import LoadGenerator

        self.generator = LoadGenerator(spec, clock, history)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="chaoslab-load", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def go() -> None:
            self._stop = asyncio.Event()
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
                 ledger_root: Path | None = None) -> None:
        self.title = title
        self.run_id = new_run_id(title)
        self.run_dir = run_dir
        self.stack_file = stack_file
        self.dry_run = dry_run
        self.clock = Clock()
        self.plan: list[str] = []
        self.analysis: dict[str, Any] | None = None
        self._active = 0
        self._injected = False
        self._loads: list[LoadHandle] = []
        self._load_spec: dict[str, Any] | None = None
        self._journal: Journal | None = None
        self._ledger = Ledger(self.run_id, ledger_root)
        self._ledger_root = ledger_root
        self._containers: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> ChaosSession:
        dead = dead_runs(self._ledger_root)
        if dead:
            raise LedgerError(
                f"unreverted faults of a dead run are in the ledger ({', '.join(r.run_id for r in dead)}); "
                "run `chaoslab recover` first"
            )
        self._journal = Journal(self.run_dir, self.clock)
        if not self.dry_run:
            self._ledger.open({"session": self.title, "run_dir": str(self.run_dir)})
        self._journal.write("run", run_id=self.run_id, title=self.title, started_at=self.clock.wall0)
        self._journal.write("phase", name="baseline")
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.finish()

    def finish(self) -> dict[str, Any] | None:
        if self._journal is None:
            return self.analysis
        for handle in self._loads:
            handle.stop()
        self._loads.clear()
        journal, self._journal = self._journal, None
        self._copy_container_events(journal)
        journal.write("phase", name="end")
        experiment: dict[str, Any] = {"title": self.title, "method": [], "probes": {}, "load": self._load_spec}
        journal.write_json(EXPERIMENT, {"path": None, "run_id": self.run_id, "experiment": experiment})
        journal.close()
        if not self.dry_run:
            self._ledger.close()
        from ..analysis import analyze

        self.analysis = analyze(self.run_dir)
        journal.write_json(SUMMARY, {"run_id": self.run_id, "title": self.title, "analysis": self.analysis})
        return self.analysis

    def _copy_container_events(self, journal: Journal) -> None:
        """Docker's events of the containers the session's faults touched (as the runner does)."""
        if not self._containers:
            return
        from ..platforms import docker

        try:
            events = docker.events(self.clock.wall0, time.time(), sorted(self._containers))
        except Exception as exc:  # the daemon went away: the session's own records still stand
            journal.write("error", what="container events", error=f"{type(exc).__name__}: {exc}")
            return
        for ev in events:
            fields = {k: v for k, v in ev.items() if k not in ("time", "event")}
            journal.write("event", t=float(ev["time"]) - self.clock.wall0, source="docker", kind=ev["event"], **fields)

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
        if fault.target is not None:
            self._containers.update(ref for c in fault.target.extra.get("containers") or []
                                    for ref in (c["id"], c["name"]))
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
                    journal.write("fault", action="revert" if cls.reversible else "end", step=0, fault=name,
                                  target=target_name, describe=fault.describe())
                    if self._active == 0:
                        journal.write("phase", name="recovery")

        if not self._injected:
            self._injected = True
            journal.write("phase", name="fault")
        self._active += 1
        timer = threading.Timer(duration, end) if duration is not None else None
        try:
            actuate.inject(fault, self._ledger, lambda e: entry.__setitem__(0, e))
            journal.write("fault", action="inject", step=0, fault=name, target=target_name,
                          describe=fault.describe(), state=fault.state)
            if timer is not None:
                timer.daemon = True
                timer.start()
            yield fault
        finally:
            if timer is not None:
                timer.cancel()
            end()

    # -- load ---------------------------------------------------------------------------
    def load(self, **http: Any) -> LoadHandle:
        """Start an HTTP load (the keys of ``load: {http: ...}`` in an experiment)."""
        from ..experiment.workload import LoadSpec

        spec = LoadSpec.model_validate({"http": http})
        self._load_spec = spec.model_dump(mode="json")
        handle = LoadHandle(spec, self.clock, self.run_dir / HISTORY)
        self._loads.append(handle)
        return handle
