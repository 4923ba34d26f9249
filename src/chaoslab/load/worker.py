"""One load worker process: ``python -m chaoslab.load.worker PARENT_PID`` (started by load/workers.py).

It reads its config line on stdin, says ``ready`` once its driver is up, sends its share of the
schedule from the ``go`` time until ``stop``, EOF on stdin (the parent is gone) or SIGTERM (the
kernel's PR_SET_PDEATHSIG when the parent dies), then cuts what is in flight, writes its
history lines and says ``done`` with its final counters and CPU time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..experiment.workload import LoadSpec
from ..journal import RunClock
from .generator import LoadGenerator, settle_gc
from .workers import STATS_EVERY

_PR_SET_PDEATHSIG = 1
#: After a stop signal, the worker's own deadline to be gone (a user's function may block the loop).
_HARD_EXIT_AFTER = 3.0


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies, and exit at once if it already has (the race before prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stats(gen: LoadGenerator) -> dict[str, Any]:
    out = gen.stats()
    out["cpu"] = round(time.process_time(), 6)
    return out


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_term(*_: Any) -> None:
        # a thread, so the deadline holds even while a blocking call holds the event loop
        timer = threading.Timer(_HARD_EXIT_AFTER, os._exit, (1,))
        timer.daemon = True  # a worker that finishes in time exits at once
        timer.start()
        loop.call_soon_threadsafe(stop.set)

    signal.signal(signal.SIGTERM, on_term)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    clock = RunClock()
    clock.t0 = float(config["t0"])  # the parent's: CLOCK_MONOTONIC is the same clock in every process
    i, n = config["share"]
    gen = LoadGenerator(LoadSpec.model_validate(config["spec"]), clock, Path(config["history"]),
                        share=(i, n), run_token=config["run"])
    settle_gc()
    _say("ready")
    line = (await reader.readline()).decode().split()
    if not line or line[0] != "go":
        return  # stopped (or the parent died) before the run started

    async def control() -> None:
        while (await reader.readline()).strip() not in (b"stop", b""):
            pass
        stop.set()

    async def report() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATS_EVERY)
            _say(json.dumps(_stats(gen)))

    tasks = [asyncio.create_task(control()), asyncio.create_task(report())]
    try:
        await gen.send(float(line[1]), stop)
    finally:
        for task in tasks:
            task.cancel()
    _say("done " + json.dumps(_stats(gen)))


def main() -> None:
    _die_with_parent(int(sys.argv[1]))
    import uvloop

    uvloop.run(_serve())


if __name__ == "__main__":
    main()
