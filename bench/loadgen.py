"""Benchmark: the highest rate chaoslab's load generator sustains with 1 and 2 worker processes
(``load.workers``), next to wrk's single thread.

Target: nginx (Debian nginx-light) serving a small static file on 127.0.0.1, started here as a
child with a generated config (``daemon off;``, its own ``-p`` prefix, a free port, 1 worker).
"Sustains" means: every operation succeeded and the generator's lag (sent - due) p99 is at
most 5 ms (``--lag-max``). Rates are stepped up until that breaks, then bisected (each rate gets
``--attempts`` tries: the machine is shared), first with one worker (the runner's own process),
then with two worker processes sharing the schedule. wrk (one thread, 64 connections, closed
loop: as fast as it can) runs against the same target in the same run, before and after each
search; each ratio is to the mean of the two wrk runs around its search, both printed, so a
drifting machine shows. CPU per request is printed for both (wrk's from its rusage): a busy
machine disturbs it far less than throughput. With ``--clients``, aiohttp and httpx are measured
closed-loop too: they are why the generator has its own small client on httptools
(chaoslab/load/connection.py).

    .venv/bin/python bench/loadgen.py [--seconds 5] [--start 2000] [--step 1000] [--max 40000] [--nice -10] [--lag-max 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from chaoslab.experiment.workload import LoadSpec
from chaoslab.journal import RunClock
from chaoslab.load import LoadGenerator

LAG_P99_MAX = 0.005
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(prefix: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    prefix.chmod(0o755)  # nginx workers run unprivileged and must read the file
    (prefix / "www").mkdir()
    (prefix / "www" / "index.html").write_text("<html>hello from chaoslab bench</html>\n")
    (prefix / "www" / "index.html").chmod(0o644)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port))
    proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"http://127.0.0.1:{port}/index.html"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"nginx did not start: {(prefix / 'error.log').read_text()}")


#: wrk's CPU per request (µs) of each run_wrk call: the client's own cost, which a busy machine
#: disturbs far less than its throughput (it is what the machine's cores must pay per request).
WRK_CPU_US: list[float] = []


def run_wrk(url: str, seconds: int, connections: int = 64) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url], capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    assert m and n, out
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    WRK_CPU_US.append(1e6 * cpu / max(1, int(n.group(1))))
    return float(m.group(1))


async def _generate(url: str, rate: float, seconds: float, history: Path, workers: int = 1) -> dict[str, Any]:
    spec = LoadSpec.model_validate({"workers": workers, "http": {"url": url, "rate": rate, "timeout": "2s",
                                                                 "concurrency": 1024, "max_lag": 1.0}})
    gen = LoadGenerator(spec, RunClock(), history)
    stop = asyncio.Event()
    await gen.prepare(stop)  # worker processes start before the clock of the measurement does
    cpu0 = time.process_time() + gen.worker_cpu()
    task = asyncio.create_task(gen.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    cpu = time.process_time() + gen.worker_cpu() - cpu0
    ops = [json.loads(line) for line in history.read_text().splitlines()[1:]]
    ops = [op for op in ops if not op.get("cut")]
    lags = sorted(op["t_sent"] - op["t_scheduled"] for op in ops if op["t_sent"] is not None)
    lats = sorted(op["latency"] for op in ops if op["outcome"] == "ok")
    ok = sum(1 for op in ops if op["outcome"] == "ok")
    return {
        "rate": rate,
        "workers": workers,
        "ops": len(ops),
        "ok": ok,
        "achieved": ok / seconds,
        "errors": len(ops) - ok,
        "cpu_us_per_op": 1e6 * cpu / max(1, len(ops)),
        "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else None,
        "latency_p99_ms": 1000 * lats[int(0.99 * (len(lats) - 1))] if lats else None,
    }


def highest(url: str, workers: int, args: argparse.Namespace, tmp: Path, start: float) -> dict[str, Any] | None:
    """The highest rate sustained: step up until a rate fails, then bisect between it and the best."""
    best: dict[str, Any] | None = None
    rate, failed_at = start, None
    while rate <= args.max and (failed_at is None or failed_at - (best or {"rate": 0})["rate"] > args.step / 8):
        for attempt in range(args.attempts):  # the machine is shared: a rate gets a second chance
            res = uvloop.run(_generate(url, rate, args.seconds, tmp / f"h{workers}-{rate:.0f}-{attempt}.jsonl", workers))
            sustained = res["errors"] == 0 and res["lag_p99_ms"] is not None and res["lag_p99_ms"] <= args.lag_max
            if sustained:
                break
        lag = "-" if res["lag_p99_ms"] is None else f"{res['lag_p99_ms']:.2f}"
        print(f"chaoslab open model, {workers} worker(s), {rate:>7,.0f}/s: achieved {res['achieved']:>8,.0f}/s, "
              f"errors {res['errors']}, lag p99 {lag} ms, cpu {res['cpu_us_per_op']:.0f} us/op"
              f" -> {'sustained' if sustained else 'NOT sustained'}", flush=True)
        if sustained:
            best = res
        else:
            failed_at = rate
        low = best["rate"] if best else 0.0
        rate = rate + args.step if failed_at is None else round((low + failed_at) / 2, -2)
    return best


async def _closed_loop(client: str, url: str, seconds: float, workers: int = 64) -> float:
    """Requests per second with ``workers`` loops each waiting for its answer (client overhead only)."""
    count = 0
    end = time.monotonic() + seconds
    if client == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as s:
            async def one() -> None:
                nonlocal count
                while time.monotonic() < end:
                    async with s.get(url) as r:
                        await r.read()
                    count += 1

            await asyncio.gather(*(one() for _ in range(workers)))
    else:
        import httpx

        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        async with httpx.AsyncClient(limits=limits) as c:
            async def one_httpx() -> None:
                nonlocal count
                while time.monotonic() < end:
                    (await c.get(url)).read()
                    count += 1

            await asyncio.gather(*(one_httpx() for _ in range(workers)))
    return count / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--start", type=float, default=2000)
    ap.add_argument("--step", type=float, default=1000)
    ap.add_argument("--max", type=float, default=40000)
    ap.add_argument("--attempts", type=int, default=2, help="tries per rate before it counts as not sustained")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness increment for this process and its children (nginx, wrk), e.g. -10 on a busy "
                         "shared machine (root only); the same for all, so the comparison stays fair")
    ap.add_argument("--lag-max", type=float, default=LAG_P99_MAX * 1000,
                    help="the lag p99 (ms) a sustained rate keeps; 5 by default, the bench's bound")
    ap.add_argument("--clients", action="store_true", help="also measure aiohttp and httpx closed-loop")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian package wrk)")
    if args.nice:
        os.nice(args.nice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench still stops its nginx
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, niceness {os.nice(0)}")
    with tempfile.TemporaryDirectory(prefix="chaoslab-bench-loadgen-") as tmp:
        proc, url = start_nginx(Path(tmp))
        try:
            seconds = max(1, round(args.seconds))
            wrks = [run_wrk(url, seconds)]
            print(f"wrk -t1 -c64 (closed loop, max throughput): {wrks[-1]:,.0f} req/s", flush=True)
            if args.clients:
                for client in ("aiohttp", "httpx"):
                    rps = uvloop.run(_closed_loop(client, url, 3.0))
                    print(f"{client} closed loop, 64 in flight: {rps:,.0f} req/s")
            results: list[dict[str, Any] | None] = []
            for workers in (1, 2):
                # wrk before and after each search: a shared machine's load drifts within minutes
                start = results[-1]["rate"] if results and results[-1] else args.start
                results.append(highest(url, workers, args, Path(tmp), start))
                wrks.append(run_wrk(url, seconds))
                print(f"wrk -t1 -c64 again: {wrks[-1]:,.0f} req/s", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    print()
    print(f"{'':32}{'req/s':>10}")
    met = True
    for i, (label, goal) in enumerate((("chaoslab, 1 worker (open model)", 0.6), ("chaoslab, 2 workers (open model)", 1.0))):
        res, wrk = results[i], (wrks[i] + wrks[i + 1]) / 2
        print(f"{'wrk -t1 (closed loop)':32}{wrk:>10,.0f}   (mean of {wrks[i]:,.0f} before and {wrks[i + 1]:,.0f} after)")
        if res is None:
            print(f"{label:32}{'none':>10}   no rate sustained")
            met = False
            continue
        ratio = res["rate"] / wrk
        met = met and ratio >= goal
        print(f"{label:32}{res['rate']:>10,.0f}   = {ratio:.0%} of wrk (goal {goal:.0%}), lag p99 "
              f"{res['lag_p99_ms']:.2f} ms, {res['cpu_us_per_op']:.0f} us CPU/op")
    wrk_cpu = sorted(WRK_CPU_US)[len(WRK_CPU_US) // 2]
    print(f"CPU per request: wrk -t1 {wrk_cpu:.1f} us (median of its runs); chaoslab at its best rate: "
          + ", ".join(f"{w} worker(s) {r['cpu_us_per_op']:.1f} us ({wrk_cpu / r['cpu_us_per_op']:.0%} of wrk's efficiency)"
                      for w, r in zip((1, 2), results, strict=True) if r))
    print(f"goals (1 worker >= 60% of wrk -t1, 2 workers >= 100%, lag p99 <= {args.lag_max:g} ms): "
          f"{'MET' if met else 'NOT MET'}")
    print(json.dumps({"wrk": wrks, "wrk_cpu_us": WRK_CPU_US, "workers": [r and r["rate"] for r in results],
                      "cpu_us": [r and round(r["cpu_us_per_op"], 1) for r in results]}))


if __name__ == "__main__":
    main()
