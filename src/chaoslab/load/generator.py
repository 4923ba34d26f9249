"""The open-model load generator (GUIDE §4).

Operation k is due at start + k/R whatever happened to the earlier ones, so a stalled system
is measured by the operations that waited, not hidden by a generator that waited with them
(no coordinated omission). Each operation's latency is measured from its due time. An
operation that finds ``concurrency`` operations already in flight is not sent and counts as
failed; the gap between due and sent is recorded as the generator's lag.

With ``load.workers`` N > 1 the schedule is shared by N worker processes (load/workers.py):
worker i sends the operations k = i mod N, each at its own exact due time on the run's clock,
and all append to the one history. With N = 1 the runner's own event loop sends them all.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

from ..experiment.workload import HttpLoad, LoadSpec
from ..journal import RunClock
from .driver import Cancel, Driver, Result
from .history import History, Operation
from .pacing import due
from .workers import WorkerPool, worker_count

#: The scheduler never sleeps longer than this, so a stop is seen promptly.
_MAX_SLEEP = 0.05
#: Nor shorter: the event loop's timers have a 1 ms resolution, and shorter sleeps spin the CPU.
#: Operations falling due meanwhile are sent as one batch on waking (recorded lag <= ~1 ms).
_MIN_SLEEP = 0.001
#: The sweeper's shortest sleep: operations whose deadlines fall this close together are given up
#: in one pass. One sweeper for all operations is much cheaper than a timer per operation.
_SWEEP_EVERY = 0.005
#: Its longest: operations answered meanwhile leave the queue then (it holds at most this long's).
_SWEEP_MAX = 0.5


def settle_gc() -> None:
    """Freeze what exists before the schedule starts (until send() ends).

    What exists by then (modules, the experiment, pydantic's schemas) lives for the whole run. In
    the collector's sight, every full collection walked it all and paused the schedule (measured
    on a busy machine at 6,000/s: 150-220 ms each, 25-36 ms frozen). No collection first: a full
    one takes as long, and would delay the first operation by it."""
    gc.freeze()


def make_driver(spec: LoadSpec, run: str) -> Driver:
    work = spec.workload
    if isinstance(work, HttpLoad):
        from .http import HttpDriver

        return HttpDriver(work, run)
    from .python import PythonDriver

    return PythonDriver(work, run)


class _Flight:
    """An operation in flight: its deadline and how to abandon it."""

    __slots__ = ("cancel", "deadline", "done", "op")

    def __init__(self, op: Operation, deadline: float) -> None:
        self.op = op
        self.deadline = deadline
        self.done = False
        self.cancel: Cancel = _nothing


def _nothing() -> None:
    return None


class LoadGenerator:
    """Sends ``spec``'s operations at its fixed rate on ``clock`` and records them in ``history_path``.

    ``await run(stop)`` until ``stop`` is set; ``stats()`` any time for the console;
    ``worker_cpu()`` for the CPU its worker processes used (0 when it sends in-process).
    ``share=(i, n)`` and ``run_token`` are for a worker process: it sends operations k = i mod n.
    """

    def __init__(self, spec: LoadSpec, clock: RunClock, history_path: Path, *,
                 share: tuple[int, int] | None = None, run_token: str | None = None) -> None:
        self.spec = spec
        self.work = spec.workload
        self.clock = clock
        self.history_path = history_path
        self.run_token = run_token or secrets.token_hex(4)
        self.workers = 1 if share is not None else worker_count(spec)
        self._offset, self._stride = share or (0, 1)
        # built here even when worker processes send: a bad URL or callable is refused before the run
        self.driver: Driver = make_driver(spec, self.run_token)
        # in send order, so deadlines grow along it (the timeout is the same for all)
        self._pending: deque[_Flight] = deque()
        self._inflight = 0
        self._counts = {"scheduled": 0, "sent": 0, "ok": 0, "failed": 0, "timeout": 0, "unsent": 0}
        self._recent_lag = 0.0  # worst lag since the last stats() call
        self._history: History | None = None
        self._pool: WorkerPool | None = None  # while worker processes send

    def stats(self) -> dict[str, Any]:
        """Live counters for the console: scheduled, sent, ok, failed, timeout, unsent, in_flight, lag."""
        if self._pool is not None:
            return self._pool.stats()
        out: dict[str, Any] = dict(self._counts)
        out["in_flight"] = self._inflight
        out["lag"] = self._recent_lag
        self._recent_lag = 0.0
        return out

    def worker_cpu(self) -> float:
        """CPU seconds the worker processes used so far (the runner's own is process_time())."""
        return self._pool.cpu() if self._pool is not None else 0.0

    def _header(self, start: float) -> None:
        history = History(self.history_path)
        history.header(
            run=self.run_token,
            kind="http" if isinstance(self.work, HttpLoad) else "python",
            rate=self.work.rate,
            ramp=self.work.ramp,
            timeout=self.work.timeout,
            concurrency=self.work.concurrency,
            max_lag=self.work.max_lag,
            t_start=round(start, 6),
            workers=self.workers,
            **self._poison_header(),
        )
        history.close()

    async def prepare(self, stop: asyncio.Event) -> None:
        """Start the worker processes and wait until they are ready (a no-op with one worker), so
        a run can start its baseline once they are: their start-up is not counted as lost load."""
        if self.workers > 1 and self._pool is None:
            self._pool = WorkerPool(self.spec, self.workers, self.clock, self.history_path, self.run_token)
            await self._pool.ready(stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Send at the fixed rate until ``stop`` is set; operations still in flight are cut."""
        if self.workers == 1:
            settle_gc()
            start = self.clock.now()
            self._header(start)
            await self.send(start, stop)
            return
        try:
            await self.prepare(stop)
            if stop.is_set() or self._pool is None:
                return
            start = self.clock.now() + self._pool.GO_MARGIN  # every worker has its go before the first due time
            self._header(start)
            await self._pool.run(start, stop)
        finally:
            await self.close()

    async def close(self) -> None:
        """Reap the worker processes (killing any still running): for a run that ended before ``run``."""
        if self._pool is not None:
            await self._pool.close()

    async def send(self, start: float, stop: asyncio.Event) -> None:
        """This process's share of the schedule from ``start`` until ``stop``; appends to the history."""
        history = self._history = History(self.history_path)
        await self.driver.start()
        sweeper = asyncio.create_task(self._sweep())
        try:
            await self._schedule(start, stop)
        finally:
            sweeper.cancel()
            self._cut()
            await asyncio.sleep(0)  # let cancelled tasks finish before the driver closes
            await self.driver.close()
            history.close()
            gc.unfreeze()  # settle_gc's objects are the collector's again (a long pytest session)

    async def _schedule(self, start: float, stop: asyncio.Event) -> None:
        rate, ramp, limit, timeout = self.work.rate, self.work.ramp, self.work.concurrency, self.work.timeout
        now_ = self.clock.now
        submit, complete, pending, counts, token = self.driver.submit, self._complete, self._pending, self._counts, self.run_token
        # tagged when scheduled, so an operation that times out or is never sent keeps its tag
        poison_kind = getattr(self.driver, "poison_kind", None)
        k, stride = self._offset, self._stride
        while not stop.is_set():
            now = now_()
            next_due = start + due(k, rate, ramp)
            if next_due > now:
                await asyncio.sleep(min(max(next_due - now, _MIN_SLEEP), _MAX_SLEEP))
                continue
            # send every operation already due (a batch when the loop woke up late)
            while next_due <= now:
                op = Operation(k, f"{token}-{k}", next_due)
                if poison_kind is not None:
                    op.poison = poison_kind(k)
                counts["scheduled"] += 1
                if self._inflight >= limit:
                    op.t_done, op.outcome, op.error, op.refused = now, "fail", "unsent: concurrency limit reached", True
                    counts["unsent"] += 1
                    counts["failed"] += 1
                    self._record(op)
                else:
                    sent = op.t_sent = now_()
                    if sent - next_due > self._recent_lag:
                        self._recent_lag = sent - next_due
                    counts["sent"] += 1
                    self._inflight += 1
                    flight = _Flight(op, sent + timeout)
                    pending.append(flight)
                    flight.cancel = submit(k, op.key, partial(complete, flight))
                k += stride
                next_due = start + (k / rate if not ramp else due(k, rate, ramp))

    def _poison_header(self) -> dict[str, Any]:
        spec = getattr(self.work, "poison", None)
        return {} if spec is None else {"poison": {"share": spec.share, "kinds": list(spec.kinds)}}

    def _complete(self, flight: _Flight, res: Result) -> None:
        if flight.done:  # already timed out or cut
            return
        flight.done = True
        self._inflight -= 1
        op = flight.op
        op.t_done = self.clock.now()
        op.outcome = "ok" if res.ok else "fail"
        op.status, op.ack, op.ack_id, op.refused, op.error = res.status, res.ack, res.ack_id, res.refused, res.error
        self._counts["ok" if res.ok else "failed"] += 1
        self._record(op)

    def _give_up(self, flight: _Flight, error: str, cut: bool) -> None:
        flight.done = True
        self._inflight -= 1
        flight.cancel()
        op = flight.op
        op.t_done, op.outcome, op.error, op.cut = self.clock.now(), "timeout", error, cut
        if not cut:
            self._counts["timeout"] += 1
        self._record(op)

    async def _sweep(self) -> None:
        """Abandon every operation past its deadline (recorded as a timeout).

        It sleeps until the first deadline of an operation still in flight (deadlines grow along
        the queue; a new operation's is a whole timeout away), not a fixed tick: woken every 5 ms,
        it was 200 wake-ups a second whatever the rate, most with nothing to do (bench/watch_cost.py).
        """
        pending = self._pending
        timeout = self.work.timeout
        error = f"no answer within {timeout:g}s"
        while True:
            now = self.clock.now()
            while pending and pending[0].deadline <= now:
                flight = pending.popleft()
                if not flight.done:
                    self._give_up(flight, error, cut=False)
            while pending and pending[0].done:  # keep the queue short when all is well
                pending.popleft()
            first = pending[0].deadline if pending else now + timeout
            await asyncio.sleep(min(max(first - now, _SWEEP_EVERY), _SWEEP_MAX))

    def _cut(self) -> None:
        """Abandon what is still in flight at the end of the run: recorded as cut timeouts."""
        for flight in self._pending:
            if not flight.done:
                self._give_up(flight, "cut: the run ended", cut=True)
        self._pending.clear()

    def _record(self, op: Operation) -> None:
        if self._history is not None:
            self._history.record(op)
