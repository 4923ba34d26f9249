"""``load.workers``: one open-model schedule shared by worker processes, against a real service.

Worker i of N sends operations k = i mod N at their exact due times on the run's clock, all into
one history; no worker outlives its run, even a runner killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from loadtruth_harness import SERVICE, control, scenario, truth_service
from tests.conftest import PY, child_env, the_run_dir, wait_until

from chaoslab.experiment.workload import LoadSpec
from chaoslab.journal import HISTORY, read_journal
from chaoslab.load.workers import share, spare_cores, worker_count

WORKER_MODULE = "chaoslab.load.worker"


def _history(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in (run_dir / HISTORY).read_text().splitlines()]
    return lines[0], lines[1:]


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for whoever reaps orphans here."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _workers_of(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for kid in kids:
        try:
            if WORKER_MODULE in " ".join(kid.cmdline()):
                out.append(kid)
        except psutil.Error:
            continue
    return out


def test_default_workers_are_the_spare_cores_and_shares_add_up() -> None:
    usable = len(os.sched_getaffinity(0))
    assert spare_cores() == max(1, usable - 1)
    http = {"http": {"url": "http://127.0.0.1:1/"}}
    assert worker_count(LoadSpec.model_validate(http)) == spare_cores()
    assert worker_count(LoadSpec.model_validate({**http, "workers": 3})) == 3
    # a python workload's function may keep state in the runner's process: one worker unless asked
    assert worker_count(LoadSpec.model_validate({"python": {"python": "m:f"}})) == 1
    assert [share(7, i, 3) for i in range(3)] == [3, 2, 2]
    with pytest.raises(ValueError, match="at most concurrency"):
        LoadSpec.model_validate({"http": {"url": "http://127.0.0.1:1/", "concurrency": 2}, "workers": 3})


def test_a_worker_runs_the_same_workload_with_its_share_in_flight() -> None:
    from chaoslab.load.workers import worker_spec

    spec = LoadSpec.model_validate({"workers": 3, "http": {
        "url": "http://127.0.0.1:1/orders/{{seq}}", "method": "POST", "rate": "250/s", "ramp": "2s",
        "timeout": "1500ms", "concurrency": 100, "connections": 10, "max_lag": "50ms",
        "headers": {"X-Run": "{{run}}"}, "body": {"key": "{{key}}", "id": "{{uuid}}", "qty": 1},
        "ack": {"status": [201], "id": "$.id"}, "retry_acked": 0.1,
        "poison": {"share": 0.2, "kinds": ["missing_field", "truncated_json"], "fields": {"required": "qty"},
                   "oversize": "2KB"},
    }})
    shares = [LoadSpec.model_validate(worker_spec(spec, i, 3)) for i in range(3)]
    assert [w.workers for w in shares] == [None] * 3  # a worker sends in its own process
    assert sum(w.workload.concurrency for w in shares) == 100
    assert sum(w.http.connections for w in shares if w.http) == 10
    for w in shares:  # everything else, the templates and the poison (a function of the global k) alike
        assert w.http is not None and spec.http is not None
        same = w.http.model_dump(exclude={"concurrency", "connections"})
        assert same == spec.http.model_dump(exclude={"concurrency", "connections"})


def test_two_workers_one_history_exact_schedule_stall_and_data_loss(tmp_path: Path) -> None:
    rate = 100
    with truth_service() as base:
        # planted before the load: an even and an odd operation (one per worker) acked but never stored
        asyncio.run(control(base, drop=[6, 13]))
        a, truth = asyncio.run(
            scenario(
                tmp_path,
                base,
                load={
                    "workers": 2,
                    "http": {
                        "url": f"{base}/orders",
                        "method": "POST",
                        "rate": f"{rate}/s",
                        "timeout": "3s",
                        "body": {"seq": "{{seq}}", "key": "{{key}}"},
                        "ack": {"status": [201], "id": "$.id"},
                        "max_lag": "1s",
                    },
                },
                baseline=2.0,
                hold=1.5,
                recovery=2.0,
                inject={"stall_for": 1.0},
                verify={"http": {"url": f"{base}/orders", "ids": "$.orders[*].id"}, "deadline": "5s"},
            )
        )
    header, ops = _history(tmp_path)
    assert header["type"] == "load" and header["workers"] == 2
    # every scheduled operation exactly once, each at its own due time t0 + k/R
    ids = Counter(op["id"] for op in ops)
    assert max(ids.values()) == 1
    assert sorted(ids) == list(range(len(ids)))
    assert len(ids) >= rate * 5 * 0.9
    for op in ops:
        assert op["t_scheduled"] == pytest.approx(header["t_start"] + op["id"] / rate, abs=2e-6)
    # latency from the due time: the operations due during the stall waited for it
    m = a["metrics"]
    assert m["latency.p99.fault"] >= 0.5, m["latency.p99.fault"]
    assert m["latency.max.fault"] >= 0.8
    # the stall is the fault phase's, not the baseline's (relative: a run beside a busier machine
    # than stress-ng's had a baseline p99 of 0.30 s; the stall's operations waited up to 1 s)
    assert m["latency.p99.baseline"] < m["latency.p99.fault"] / 2, m
    assert abs(m["operations.fault"] - rate * 1.5) <= rate * 0.1
    assert m["availability.fault"] >= 0.99
    assert a["valid"], a["invalid_reason"]
    # writes acknowledged by either worker reach the final read's check, and only the dropped are lost
    run = header["run"]
    loss = a["data_loss"]
    assert loss["status"] == "checked"
    assert loss["lost"] == [f"{run}-6", f"{run}-13"]
    assert loss["unexpected"] == [] and loss["duplicates"] == []
    assert truth["stop_took"] < 1.5


def _experiment(base: str, pid: int, *, rate: int, baseline: str) -> str:
    return f"""
title: load workers
targets:
  svc: {{pid: {pid}}}
load:
  workers: 2
  http: {{url: "{base}/hello", rate: {rate}/s, timeout: 2s, max_lag: 1s}}
method:
  - {{fault: process.pause, target: svc, at: {baseline}, duration: 200ms}}
recovery: 1s
"""


def _start_service() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(SERVICE)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def test_a_run_with_workers_counts_their_cpu_and_leaves_none(tmp_path: Path) -> None:
    svc, base = _start_service()
    exp = tmp_path / "exp.yaml"
    exp.write_text(_experiment(base, svc.pid, rate=1000, baseline="2s"))
    runs = tmp_path / "runs"
    runner = subprocess.Popen([PY, "-m", "chaoslab", "run", str(exp), "--runs-dir", str(runs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env(tmp_path / "state"))
    seen: dict[int, float] = {}  # worker pid -> the last CPU time seen while it ran
    runner_cpu = 0.0  # the runner's own CPU time, last seen while its workers still ran (before the end mark)
    pids: set[int] = set()
    try:
        while runner.poll() is None:
            try:
                t = psutil.Process(runner.pid).cpu_times()
            except psutil.Error:
                break
            workers = _workers_of(runner.pid)
            for w in workers:
                try:
                    wt = w.cpu_times()
                    seen[w.pid] = wt.user + wt.system
                    pids.add(w.pid)
                except psutil.Error:
                    pass
            if workers:
                runner_cpu = t.user + t.system
            wait_until(lambda: runner.poll() is not None, 0.05)
        out, err = runner.communicate(timeout=60)
    finally:
        _stop(runner)
        _stop(svc)
    assert runner.returncode in (0, 1, 4), out + err
    assert len(pids) == 2, pids
    assert all(_gone(pid) for pid in pids)  # reaped by the runner at the end of a normal run
    run_dir = the_run_dir(runs)
    header, ops = _history(run_dir)
    assert header["workers"] == 2 and len({op["id"] for op in ops}) == len(ops)
    # the phase marks carry the runner's CPU plus its workers'. /proc's tick-based figures and the
    # processes' own clocks differ by a few hundredths, hence the margin; without the workers' CPU
    # the end mark would be the runner's alone, barely above what was seen of it
    marks = [r for r in read_journal(run_dir) if r["type"] == "phase"]
    assert marks[-1]["name"] == "end"
    assert sum(seen.values()) > 0.3
    assert marks[-1]["cpu"] >= runner_cpu + 0.7 * sum(seen.values()), (marks, runner_cpu, seen)
    # and the baseline starts with the load running: its first second has operations
    t_base = marks[0]["t"]
    assert sum(1 for op in ops if t_base <= op["t_scheduled"] < t_base + 1) >= 900


def test_no_worker_outlives_a_sigkilled_runner(tmp_path: Path) -> None:
    svc, base = _start_service()
    exp = tmp_path / "exp.yaml"
    exp.write_text(_experiment(base, svc.pid, rate=200, baseline="60s"))
    runs = tmp_path / "runs"
    runner = subprocess.Popen([PY, "-m", "chaoslab", "run", str(exp), "--runs-dir", str(runs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env(tmp_path / "state"))
    try:
        assert wait_until(lambda: len(_workers_of(runner.pid)) == 2 or runner.poll() is not None, 30)
        pids = [w.pid for w in _workers_of(runner.pid)]
        assert len(pids) == 2, runner.poll()

        def sending() -> bool:
            hist = runs.exists() and list(runs.glob("*/" + HISTORY))
            return bool(hist) and len(hist[0].read_text().splitlines()) > 50

        assert wait_until(sending, 30)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
        assert wait_until(lambda: all(_gone(pid) for pid in pids), 10), [
            (pid, Path(f"/proc/{pid}/status").read_text().splitlines()[2]) for pid in pids if not _gone(pid)
        ]
    finally:
        _stop(runner)
        _stop(svc)


def test_a_worker_that_dies_mid_run_fails_the_load(tmp_path: Path) -> None:
    from chaoslab.errors import ChaoslabError
    from chaoslab.journal import RunClock
    from chaoslab.load import LoadGenerator

    async def go(base: str) -> tuple[int, BaseException | None]:
        spec = LoadSpec.model_validate({"workers": 2, "http": {"url": f"{base}/hello", "rate": "100/s"}})
        gen = LoadGenerator(spec, RunClock(), tmp_path / HISTORY)
        stop = asyncio.Event()
        await gen.prepare(stop)
        task = asyncio.create_task(gen.run(stop))
        await asyncio.sleep(0.5)
        assert gen._pool is not None
        victim = gen._pool.workers[1].proc.pid
        os.kill(victim, signal.SIGKILL)
        try:
            await asyncio.wait_for(task, 10)
        except ChaoslabError as exc:
            return victim, exc
        finally:
            stop.set()
        return victim, None

    with truth_service() as base:
        victim, error = asyncio.run(go(base))
    assert error is not None and "load worker 1 exited with -9 mid-run" in str(error)
    assert _gone(victim)


def test_a_session_load_with_workers_has_load_from_its_return_and_leaves_none(tmp_path: Path) -> None:
    import time

    from chaoslab.runner.session import ChaosSession

    rate = 200
    with truth_service() as base:
        with ChaosSession(tmp_path / "run", "session workers", ledger_root=tmp_path / "ledger") as chaos:
            load = chaos.load(url=f"{base}/hello", rate=rate, workers=2)
            assert load.generator._pool is not None
            pids = [w.proc.pid for w in load.generator._pool.workers]
            returned = time.monotonic()
            time.sleep(1.0)
            ended = time.monotonic()
        header, ops = _history(tmp_path / "run")
    assert header["workers"] == 2 and len(pids) == 2
    # load() returned once its workers were ready: the second after it had its operations
    assert len(ops) >= rate * (ended - returned) * 0.8, len(ops)
    assert all(_gone(pid) for pid in pids)
    assert chaos.analysis is not None and chaos.analysis["metrics"]["chaoslab_cpu"] > 0.05
