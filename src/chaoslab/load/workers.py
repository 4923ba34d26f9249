"""Load worker processes: one open-model schedule shared by N processes (``load.workers``).

One Python process tops out well below what a load-generating thread written in C sends
(bench/loadgen.py), so the schedule is split: worker i of N sends operations k = i mod N, each
due at t0 + k/R on the run's clock (CLOCK_MONOTONIC is one clock for every process, so the
parent's ``RunClock.t0`` is handed over and due times, latencies and the lag stay exact). Every
worker appends whole lines to the one history file (history.py says why they do not interleave).

The exchange with a worker is lines on its stdin and stdout:
  parent -> worker  the config (JSON), then ``go <start>``, then ``stop`` (or EOF: the parent is gone)
  worker -> parent  ``ready``, then a JSON stats line every STATS_EVERY s, then ``done <stats>``
A worker also asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG), so no worker
outlives a runner that was SIGKILLed; on either signal it cuts what is in flight and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ChaoslabError
from ..experiment.workload import HttpLoad, LoadSpec
from ..journal import RunClock

#: How often a worker reports its counters (the console shows them once a second).
STATS_EVERY = 0.25
#: How long workers get to start (interpreter, imports, the driver) before the run gives up.
READY_WITHIN = 30.0
#: After ``stop``, how long a worker gets to cut its operations and write its lines before it is
#: killed (the runner's watcher cancels the load after 5 s).
EXIT_WITHIN = 4.0


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a cgroup cpuset or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def spare_cores() -> int:
    """The cores the machine can spare for load: all usable ones but one, left for the runner's
    probes and bookkeeping (and whatever shares the machine), and at least one."""
    return max(1, usable_cores() - 1)


def worker_count(spec: LoadSpec) -> int:
    """``load.workers``, or by default spare_cores() for HTTP and 1 for a python workload (a user's
    function may keep state in the runner's process); never more than the operations or
    connections allowed in flight, so every worker has a share of them."""
    if spec.workers is not None:
        return spec.workers
    work = spec.workload
    if not isinstance(work, HttpLoad):
        return 1
    return max(1, min(spare_cores(), work.concurrency, work.connections))


def share(total: int, i: int, n: int) -> int:
    """Worker i's share of ``total`` (concurrency, connections): the shares add up to ``total``."""
    return total // n + (1 if i < total % n else 0)


def worker_spec(spec: LoadSpec, i: int, n: int) -> dict[str, Any]:
    """The load spec worker i runs: its share of the operations and connections in flight."""
    doc = spec.model_dump(mode="json", exclude_none=True)
    doc["workers"] = None
    kind = "http" if spec.http is not None else "python"
    doc[kind]["concurrency"] = max(1, share(spec.workload.concurrency, i, n))
    if spec.http is not None:
        doc[kind]["connections"] = max(1, share(spec.http.connections, i, n))
    return doc


class _Worker:
    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        self.index = index
        self.proc = proc
        self.stats: dict[str, Any] = {}
        self.done = False  # sent ``done``: its history lines are written
        self.ready = asyncio.get_running_loop().create_future()
        self.stderr = b""
        self.cpu = 0.0  # last reported (CPU seconds of the process)
        self.stderr_task: asyncio.Task[None] | None = None

    def live_cpu(self) -> float:
        """Its CPU now, read from /proc while it runs; the last reported figure otherwise."""
        import psutil

        if not self.done and self.proc.returncode is None:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(self.proc.pid).cpu_times()
                self.cpu = max(self.cpu, t.user + t.system)
        return self.cpu


class WorkerPool:
    """N worker processes sending one schedule: ``ready``, then ``run(start, stop)``, then ``close``."""

    #: Seconds between the go and the first due time, so each worker has read its go by then.
    GO_MARGIN = 0.02

    def __init__(self, spec: LoadSpec, n: int, clock: RunClock, history: Path, run_token: str) -> None:
        self.spec = spec
        self.n = n
        self.clock = clock
        self.history = history
        self.run_token = run_token
        self.workers: list[_Worker] = []
        self._readers: list[asyncio.Task[None]] = []
        self._lag = 0.0  # the worst lag reported since the last stats() call

    # -- starting -------------------------------------------------------------------------
    async def ready(self, stop: asyncio.Event) -> None:
        """Start the workers and wait until each has its driver ready (or ``stop`` is set)."""
        env = dict(os.environ)
        # the parent's import path (a test's or a user's workload module, the worktree's src)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        for i in range(self.n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chaoslab.load.worker", str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            worker = _Worker(i, proc)
            self.workers.append(worker)
            config = {"spec": worker_spec(self.spec, i, self.n), "t0": self.clock.t0, "history": str(self.history),
                      "run": self.run_token, "share": [i, self.n]}
            self._send(worker, json.dumps(config))
            worker.stderr_task = asyncio.create_task(self._read_stderr(worker))
            self._readers += [worker.stderr_task, asyncio.create_task(self._read(worker))]
        stopped = asyncio.ensure_future(stop.wait())
        try:
            readies = asyncio.gather(*(w.ready for w in self.workers))
            waits: list[asyncio.Future[Any]] = [readies, stopped]
            done, _ = await asyncio.wait(waits, timeout=READY_WITHIN, return_when=asyncio.FIRST_COMPLETED)
            if readies in done:
                readies.result()  # a worker that died before it was ready raises here
            elif stopped not in done:
                readies.cancel()
                raise ChaoslabError(f"the load workers were not ready within {READY_WITHIN:g}s")
            else:
                readies.cancel()
        finally:
            stopped.cancel()

    # -- running --------------------------------------------------------------------------
    async def run(self, start: float, stop: asyncio.Event) -> None:
        """Start the schedule at ``start`` (run clock) and send until ``stop``; raises if a worker dies."""
        for w in self.workers:
            self._send(w, f"go {start!r}")
        stopped = asyncio.ensure_future(stop.wait())
        exits = [asyncio.ensure_future(w.proc.wait()) for w in self.workers]
        try:
            done, _ = await asyncio.wait([stopped, *exits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        for w in self.workers:
            self._send(w, "stop")
        await asyncio.wait(exits, timeout=EXIT_WITHIN)
        if stopped not in done:  # a worker ended before the run did
            dead = next(w for w, e in zip(self.workers, exits, strict=True) if e in done)
            await self._drain()
            raise ChaoslabError(f"load worker {dead.index} exited with {dead.proc.returncode} mid-run: "
                                f"{_tail(dead.stderr)}")

    async def close(self) -> None:
        """Kill what is still running (only a worker that ignored stop, or a cancelled run) and reap it."""
        for w in self.workers:
            self._send(w, "stop")  # one that never got its go exits on it at once
        if self.workers:
            await asyncio.wait([asyncio.ensure_future(w.proc.wait()) for w in self.workers], timeout=EXIT_WITHIN)
        for w in self.workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
        for w in self.workers:
            await w.proc.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self._readers:
            await asyncio.wait(self._readers, timeout=1.0)
        for task in self._readers:
            task.cancel()

    # -- what the workers say -------------------------------------------------------------
    def _send(self, w: _Worker, line: str) -> None:
        stdin = w.proc.stdin
        if stdin is not None and not stdin.is_closing() and w.proc.returncode is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(line.encode() + b"\n")

    async def _read(self, w: _Worker) -> None:
        assert w.proc.stdout is not None
        async for raw in w.proc.stdout:
            line = raw.decode().strip()
            if line == "ready":
                if not w.ready.done():
                    w.ready.set_result(None)
            elif line.startswith(("{", "done ")):
                stats = json.loads(line.removeprefix("done "))
                self._lag = max(self._lag, float(stats.pop("lag", 0.0)))
                w.cpu = max(w.cpu, float(stats.pop("cpu", 0.0)))
                w.stats = stats
                w.done = line.startswith("done ")
        if not w.ready.done():  # it ended before it was ready: its stderr says why
            await w.proc.wait()
            if w.stderr_task is not None:
                await asyncio.wait([w.stderr_task], timeout=1.0)
            w.ready.set_exception(ChaoslabError(
                f"load worker {w.index} did not start (exit {w.proc.returncode}): {_tail(w.stderr)}"))

    async def _read_stderr(self, w: _Worker) -> None:
        assert w.proc.stderr is not None
        async for raw in w.proc.stderr:
            w.stderr = (w.stderr + raw)[-4000:]

    def stats(self) -> dict[str, Any]:
        """The workers' counters added up; the worst lag any of them reported since the last call."""
        out: dict[str, Any] = {k: 0 for k in ("scheduled", "sent", "ok", "failed", "timeout", "unsent", "in_flight")}
        for w in self.workers:
            for k in out:
                out[k] += int(w.stats.get(k, 0))
        out["lag"], self._lag = self._lag, 0.0
        return out

    def cpu(self) -> float:
        """CPU seconds all workers used so far (live from /proc, or as each reported at its end)."""
        return math.fsum(w.live_cpu() for w in self.workers)


def _tail(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    return text.splitlines()[-1] if text else "(no output)"
