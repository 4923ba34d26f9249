"""The watcher: the probe loops and their stop conditions, the load generator, the machine-wide
halt and the run's deadline. It decides nothing but whether to abort."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .. import probes as probe_registry
from ..errors import ChaoslabError, ExitCode
from ..experiment.model import Experiment
from ..journal import HISTORY
from ..probes import Probe, ProbeContext, Sample
from ..records import SampleRecord, record
from ..targets import ResolvedTarget
from . import halt as halt_flag
from .control import Control


class Watcher:
    def __init__(self, control: Control, exp: Experiment, targets: dict[str, ResolvedTarget], run_dir: Path) -> None:
        self.control = control
        self.exp = exp
        self.targets = targets
        self.run_dir = run_dir
        self.load: Any = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._failing_since: dict[str, float] = {}

    async def prepare(self) -> None:
        """Start the load's worker processes before the baseline starts (their start-up takes a
        moment that would otherwise be a baseline without load)."""
        if self.exp.load is not None:
            from ..load import LoadGenerator

            self.load = LoadGenerator(self.exp.load, self.control.clock, self.run_dir / HISTORY)
            self.control.worker_cpu = self.load.worker_cpu
            try:
                await self.load.prepare(self._stop)
            except ChaoslabError:
                raise
            except Exception as exc:
                raise ChaoslabError(f"load generator failed: {type(exc).__name__}: {exc}") from exc

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._watch_halt_and_deadline(), name="watch"))
        context = ProbeContext(targets=self.targets)
        for name, spec in self.exp.probes.items():
            probe = probe_registry.build(name, spec, context)
            self._tasks.append(asyncio.create_task(self._probe_loop(probe, spec.every), name=f"probe:{name}"))
        if self.load is not None:
            self._tasks.append(asyncio.create_task(self._guard(self.load.run(self._stop), "load generator"),
                                                   name="load"))

    async def stop(self) -> None:
        """Stop the probes and the load; a task that does not end within 5 s is cancelled."""
        self._stop.set()
        if self._tasks:
            _, still = await asyncio.wait(self._tasks, timeout=5.0)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self.load is not None:
            await self.load.close()  # its workers, when the run ended before the load started

    async def _guard(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.control.abort(f"{what} failed: {type(exc).__name__}: {exc}", ExitCode.COULD_NOT_RUN)

    async def _watch_halt_and_deadline(self) -> None:
        c = self.control
        next_stats = c.clock.now() + 1.0
        while not self._stop.is_set():
            if self.load is not None and c.clock.now() >= next_stats:
                next_stats += 1.0  # a once-a-second summary for the console and the journal
                c.emit(record("load", c.clock.now(), **self.load.stats()))
            reason = halt_flag.halted()
            if reason is not None:
                c.abort(f"halted: {reason}", ExitCode.ABORTED)
            if c.plan_now() >= self.exp.max_duration:
                c.abort(f"max_duration {self.exp.max_duration:g}s reached", ExitCode.ABORTED)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)

    async def _probe_loop(self, probe: Probe[Any, Any], every: float) -> None:
        c = self.control
        try:
            await probe.start()
            k = 0
            start = c.clock.now()
            while not self._stop.is_set():
                t = c.clock.now()
                sample = await probe.sample()
                rec: SampleRecord = {"type": "sample", "t": round(t, 6), "probe": probe.name, "ok": sample.ok,
                                     "value": sample.value, "latency": sample.latency, "error": sample.error}
                c.emit(rec)
                self._check_stop_conditions(probe.name, sample, t)
                k += 1
                # fixed schedule (no drift); a slow probe skips the slots it missed
                nxt = start + k * every
                now = c.clock.now()
                if nxt < now:
                    k = int((now - start) / every) + 1
                    nxt = start + k * every
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(0.0, nxt - now))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # even sys.exit() in a user's probe must not skip the reverts
            c.abort(f"probe {probe.name!r} crashed: {type(exc).__name__}: {exc}", ExitCode.COULD_NOT_RUN)
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
        for cond in conditions:
            if t - since >= cond.failing_for:
                reason = f"stop condition: probe {probe!r} failing for {t - since:.1f}s (limit {cond.failing_for:g}s)"
                if not self.control.aborted:
                    self.control.emit({"type": "stop", "t": self.control.now(), "condition": probe, "reason": reason})
                self.control.abort(reason, ExitCode.ABORTED)
