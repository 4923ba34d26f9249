"""A miniature runner for ground-truth tests: the real load generator, a real probe loop, a
real journal, and the service of loadtruth_service.py misbehaving on cue."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from chaoslab.analysis import analyze
from chaoslab.experiment.workload import LoadSpec, VerifySpec
from chaoslab.journal import HISTORY, Journal, RunClock
from chaoslab.load import LoadGenerator
from chaoslab.runner.finalread import final_read

SERVICE = Path(__file__).with_name("loadtruth_service.py")


@contextmanager
def truth_service() -> Iterator[str]:
    """Start the service as a child process; yields its base URL; always stops it."""
    proc = subprocess.Popen([sys.executable, str(SERVICE)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"service did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def control(base: str, **kw: Any) -> float:
    """Set the service's misbehaviour; returns the service's monotonic time when it took effect."""
    async with aiohttp.ClientSession() as s, s.post(f"{base}/control", json=kw) as r:
        r.raise_for_status()
        return float((await r.json())["now"])


async def _probe(base: str, journal: Journal, every: float) -> None:
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        while True:
            t = journal.clock.now()
            started = time.monotonic()
            try:
                async with s.get(f"{base}/health") as r:
                    ok, err = r.status == 200, None if r.status == 200 else f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, err = False, type(exc).__name__
            journal.write(
                "sample",
                t=t,
                probe="health",
                ok=ok,
                value=None,
                latency=time.monotonic() - started,
                error=err,
            )
            await asyncio.sleep(max(0.0, t + every - journal.clock.now()))


async def _until(clock: RunClock, t: float) -> None:
    await asyncio.sleep(max(0.0, t - clock.now()))


async def scenario(
    run_dir: Path,
    base: str,
    *,
    load: dict[str, Any] | None,
    baseline: float,
    hold: float,
    recovery: float,
    inject: dict[str, Any],
    probe_every: float = 0.25,
    verify: dict[str, Any] | None = None,
    hypothesis: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run baseline -> inject (a /control call) -> revert after ``hold`` -> recovery; analyse."""
    clock = RunClock()
    journal = Journal(run_dir, clock)
    experiment = {
        "title": "ground truth",
        "probes": {
            "health": {"http": {"url": f"{base}/health"}, "every": probe_every, "signal": True}
        },
        "load": load,
        "method": [{"fault": "test.misbehave", "target": "svc"}],
        "verify": verify,
        "hypothesis": hypothesis or {},
    }
    journal.write_json("experiment.json", {"path": "ground-truth", "experiment": experiment})
    journal.write(
        "run",
        run_id=run_dir.name,
        title="ground truth",
        started_at=clock.wall0,
        experiment=experiment,
    )
    stop = asyncio.Event()
    gen = LoadGenerator(LoadSpec.model_validate(load), clock, run_dir / HISTORY) if load else None
    if gen:
        await gen.prepare(stop)  # load workers (load.workers) start before the baseline, as in a run
    t_base = clock.now()
    journal.write("phase", t=t_base, name="baseline")
    gen_task = asyncio.create_task(gen.run(stop)) if gen else None
    probe_task = asyncio.create_task(_probe(base, journal, probe_every))
    truth: dict[str, float] = {}
    try:
        await _until(clock, t_base + baseline)
        journal.write("phase", name="fault")
        journal.write(
            "fault",
            action="inject",
            step=0,
            fault="test.misbehave",
            target="svc",
            describe=json.dumps(inject),
        )
        truth["t_inject"] = clock.now()
        took_effect = clock.at(await control(base, **inject))
        truth["t_control"] = clock.now()
        # the service's own clock (CLOCK_MONOTONIC is one clock for every process): exact truth
        truth["t_misbehave"] = took_effect
        if "fail_for" in inject:
            truth["t_fail_end"] = took_effect + float(inject["fail_for"])
        await _until(clock, t_base + baseline + hold)
        journal.write(
            "fault", action="revert", step=0, fault="test.misbehave", target="svc", describe=""
        )
        journal.write("phase", name="recovery")
        truth["t_revert"] = clock.now()
        await _until(clock, t_base + baseline + hold + recovery)
        stop.set()
        t_stop = clock.now()
        if gen_task:
            await gen_task
        truth["stop_took"] = clock.now() - t_stop
    finally:
        stop.set()
        probe_task.cancel()
        await asyncio.gather(probe_task, return_exceptions=True)
        if gen_task:
            await asyncio.gather(gen_task, return_exceptions=True)
    journal.write("phase", name="end")
    journal.write("end", errors=[])
    journal.close()
    if verify:
        await final_read(VerifySpec.model_validate(verify), run_dir)
    return analyze(run_dir), truth
