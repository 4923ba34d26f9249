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

WATCH_EVERY = 0.1
"""How often the halt flag and the run's deadline are looked at (runner/halt.py promises 100 ms)."""


class Watcher:
    def __init__(self, control: Control, exp: Experiment, targets: dict[str, ResolvedTarget], run_dir: Path) -> None:
        self.control = control
        self.exp = exp
        self.targets = targets
        self.run_dir = run_dir
        self.load: Any = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None
        self._failing_since: dict[str, float] = {}
        self._probes: list[tuple[Probe[Any, Any], float, BaseException | None]] = []
        """Started by prepare(), looped by start(): (probe, interval, what its start() raised)."""

    async def prepare(self) -> None:
        """Start the probes and the load's worker processes before the baseline starts: the probes'
        first sample is then taken at the baseline's start, and what starting them costs (an HTTP
        client imports its transport and builds its TLS context) is start-up, not CPU taken from
        the system under test during the phases (docs/metrics.md, watching cost). The load's
        workers take a moment to start that would otherwise be a baseline without load."""
        context = ProbeContext(targets=self.targets)
        for name, spec in self.exp.probes.items():
            probe = probe_registry.build(name, spec, context)
            failed: BaseException | None = None
            try:
                await probe.start()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # reported by its loop, as a crash in start() always was
                failed = exc
            self._probes.append((probe, spec.every, failed))
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
        self._watch = asyncio.create_task(self._watch_halt_and_deadline(), name="watch")
        self._tasks.append(self._watch)
        for probe, every, failed in self._probes:
            self._tasks.append(asyncio.create_task(self._probe_loop(probe, every, failed), name=f"probe:{probe.name}"))
        self._probes = []
        if self.load is not None:
            self._tasks.append(asyncio.create_task(self._guard(self.load.run(self._stop), "load generator"),
                                                   name="load"))

    async def stop(self) -> None:
        """Stop the probes and the load; a task that does not end within 5 s is cancelled."""
        self._stop.set()
        if self._watch is not None:
            self._watch.cancel()
        if self._tasks:
            _, still = await asyncio.wait(self._tasks, timeout=5.0)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        for probe, _, _ in self._probes:  # started, but the run ended before their loops did
            with contextlib.suppress(Exception):
                await probe.close()
        self._probes = []
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
            # a plain sleep, not a wait_for on the stop event (a task and a timer ten times a
            # second for the whole run): stop() cancels this loop, which holds nothing to release
            await asyncio.sleep(WATCH_EVERY)

    async def _probe_loop(self, probe: Probe[Any, Any], every: float, failed: BaseException | None = None) -> None:
        c = self.control
        try:
            if failed is not None:  # its start() in prepare()
                raise failed
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
