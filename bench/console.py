"""The console's costs, measured in one run:

1. a journal record's way to the browser: written to journal.jsonl -> read by the SSE stream ->
   parsed by the run page in headless chromium (p50/p99), on a quiet machine and beside
   `stress-ng --cpu 2` at normal priority (goal: p99 <= 0.5 s with both cores busy);
2. the Runs page with 1,000 run directories: the server's time (index refresh + query + HTML,
   from its Server-Timing header) and the whole request, cold (index built) and warm
   (goal: <= 300 ms);
3. the Runs page following the runs directory (SSE, 1,000 runs): from a new run directory to its
   row in the browser, and a live row's phase from the journal line to the browser;
4. the runner's own CPU per second of run (examples/basic, interleaved) with and without a
   browser watching its run page (goal: no measurable difference).

    .venv/bin/python bench/console.py [--records 200] [--runs 1000] [--pairs 2]

Needs Debian's chromium and chromium-driver and selenium (scripts/setup.sh installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.serve.plant import plant_run  # noqa: E402 - after the path is set

SRC = ROOT / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


@contextmanager
def console(runs: Path, state: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "chaoslab", "serve", "--runs-dir", str(runs), "--port", str(port)],
                            env={**ENV, "CHAOSLAB_STATE_DIR": str(state)}, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chaoslab-bench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def busy(on: bool) -> Iterator[None]:
    """Both cores busy at normal priority (what a loaded CI machine does to us)."""
    if not on:
        yield
        return
    hog = subprocess.Popen(["stress-ng", "--cpu", "2", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        yield
    finally:
        hog.terminate()
        hog.wait(timeout=20)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def latency(tmp: Path, records: int, loaded: bool) -> list[float]:
    runs = tmp / f"latency-{int(loaded)}"
    run_id = "20261201-120000-bench-0001"
    d = plant_run(runs, run_id, outcome=None)
    with console(runs, tmp / "state") as url, browser() as b, busy(loaded):
        b.get(f"{url}/runs/{run_id}")
        deadline = time.monotonic() + 30
        while b.execute_script("return document.getElementById('live').dataset.records") != "2":
            if time.monotonic() > deadline:
                raise SystemExit("the run page never showed the planted journal")
            time.sleep(0.05)
        with open(d / "journal.jsonl", "a", buffering=1) as f:  # line-buffered, as the runner's journal
            for i in range(records):
                f.write(json.dumps({"type": "sample", "t": 1 + i * 0.02, "probe": "p", "ok": True,
                                    "bench_wall": time.time()}) + "\n")
                time.sleep(0.02)
        deadline = time.monotonic() + 30
        while True:
            got = b.execute_script("return window.chaoslabLatency")
            if len(got) >= records or time.monotonic() > deadline:
                return [float(x) for x in got]
            time.sleep(0.1)


def server_time(r: httpx.Response) -> float:
    """The whole handler's time, from the page's Server-Timing header (``total;dur=MS``)."""
    return float(r.headers["server-timing"].split("total;dur=")[1].split(",")[0]) / 1000


def runs_page(tmp: Path, n: int) -> tuple[float, float, list[float], list[float]]:
    runs = tmp / "many"
    for i in range(n):
        plant_run(runs, f"20260101-{i // 60:04d}{i % 60:02d}-bench-{i:04x}", title=f"Experiment {i % 10}",
                  started_at=1.8e9 + i, outcome=("held", "violated", "aborted")[i % 3])
    with console(runs, tmp / "state") as url, httpx.Client(base_url=url, timeout=60) as c:
        t = time.perf_counter()
        r = c.get("/runs")
        cold_total = time.perf_counter() - t
        cold_server = server_time(r)
        assert r.text.count("<tr data-run=") == min(n, 500) and (n <= 500 or "id=older" in r.text)
        server, total = [], []
        for _ in range(20):
            t = time.perf_counter()
            r = c.get("/runs")
            total.append(time.perf_counter() - t)
            server.append(server_time(r))
    return cold_server, cold_total, server, total


def runs_follow(tmp: Path, n: int = 20) -> tuple[list[float], list[float]]:
    """Seconds from a new run directory to its row on the Runs page, and from a live run's phase
    record to its row showing it (the runs directory of runs_page, 1,000 runs). Each write waits
    a random part of the stream's 0.5 s period first: written right after the row showed, it
    would always land just after the stream's look and measure the whole period."""
    runs = tmp / "many"
    appear, phase = [], []
    with console(runs, tmp / "state") as url, browser() as b:
        b.get(f"{url}/runs")
        for i in range(n):
            run_id = f"20270101-0000{i:02d}-follow-{i:04x}"
            time.sleep(random.uniform(0, 0.5))
            t = time.time()
            d = plant_run(runs, run_id, title="Followed", started_at=1.9e9 + i, outcome=None)
            sel = f"tr[data-run='{run_id}']"
            while not b.execute_script(f"return document.querySelector(\"{sel}\") !== null"):
                time.sleep(0.01)
            appear.append(time.time() - t)
            time.sleep(random.uniform(0, 0.5))
            t = time.time()
            with open(d / "journal.jsonl", "a") as f:
                f.write(json.dumps({"type": "phase", "t": 1.0, "name": "fault"}) + "\n")
            while "fault" not in (b.execute_script(f"return document.querySelector(\"{sel}\").textContent") or ""):
                time.sleep(0.01)
            phase.append(time.time() - t)
    return appear, phase


def runner_cpu(tmp: Path, watched: bool, idx: int) -> float:
    """CPU seconds per wall second of one `chaoslab run` of examples/basic (from wait4's rusage)."""
    port = free_port()
    svc = subprocess.Popen([sys.executable, str(ROOT / "examples/basic/service.py"), "--port", str(port)],
                           stdout=subprocess.DEVNULL)
    runs = tmp / f"cpu-{idx}"
    state = tmp / f"cpu-state-{idx}"
    runs.mkdir()
    try:
        wait_port(port)
        with console(runs, state) as url, browser() as b:
            t = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "chaoslab", "run", str(ROOT / "examples/basic/pause-under-load.yaml"),
                                     "--var", f"PORT={port}", "--runs-dir", str(runs), "-q"],
                                    env={**ENV, "CHAOSLAB_STATE_DIR": str(state)}, stdout=subprocess.DEVNULL)
            if watched:
                while not [p for p in runs.iterdir() if not p.name.startswith(".")]:
                    time.sleep(0.05)
                run_id = next(p.name for p in runs.iterdir() if not p.name.startswith("."))
                b.get(f"{url}/runs/{run_id}")
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t
            proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        svc.kill()
        svc.wait()
    return (usage.ru_utime + usage.ru_stime) / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaoslab-bench-console-") as t:
        tmp = Path(t)
        (tmp / "state").mkdir()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average before the bench: {load} (other work on the machine counts too)")
        print(f"record -> browser latency, {args.records} records at 50/s (headless chromium, SSE)")
        for loaded in (False, True):
            lat = latency(tmp, args.records, loaded)
            label = "stress-ng --cpu 2" if loaded else "machine as found "
            print(f"  {label}  p50 {pct(lat, 50) * 1e3:6.1f} ms  p99 {pct(lat, 99) * 1e3:6.1f} ms  max "
                  f"{max(lat) * 1e3:6.1f} ms  ({len(lat)}/{args.records} seen)  goal p99 <= 500 ms")
        cold_s, cold_t, server, total = runs_page(tmp, args.runs)
        print(f"Runs page, {args.runs} run directories (500 rows shown); server = the whole handler")
        print(f"  cold (index built)  server {cold_s * 1e3:6.1f} ms  request {cold_t * 1e3:6.1f} ms")
        print(f"  warm, 20 requests   server p50 {statistics.median(server) * 1e3:6.1f} ms  max {max(server) * 1e3:6.1f} ms"
              f"  request p50 {statistics.median(total) * 1e3:6.1f} ms  goal <= 300 ms")
        appear, phase = runs_follow(tmp)
        print(f"Runs page following the runs directory (SSE, {args.runs} runs, {len(appear)} new runs)")
        print(f"  new run directory -> its row  p50 {statistics.median(appear) * 1e3:6.1f} ms  max {max(appear) * 1e3:6.1f} ms")
        print(f"  phase record -> the live row  p50 {statistics.median(phase) * 1e3:6.1f} ms  max {max(phase) * 1e3:6.1f} ms")
        alone, watched = [], []
        for i in range(args.pairs):  # interleaved so machine noise hits both alike
            alone.append(runner_cpu(tmp, False, 2 * i))
            watched.append(runner_cpu(tmp, True, 2 * i + 1))
        a, w = statistics.mean(alone), statistics.mean(watched)
        print(f"runner CPU per second of run (examples/basic, {args.pairs} interleaved pairs)")
        print(f"  alone {a:.3f} s/s {[round(x, 3) for x in alone]}   watched by a browser {w:.3f} s/s "
              f"{[round(x, 3) for x in watched]}   ratio {w / a:.2f}")


if __name__ == "__main__":
    main()
