"""What eBPF tracing costs the exchange: trading-API throughput with and without chaoslab's
bpftrace tracers, measured side by side.

Starts a throwaway PostgreSQL 15, Redis and the trading API, then runs wrk (closed loop, POST
/orders) for ROUNDS rounds; each round measures every configuration back to back in a rotating
order, so drift on this shared machine hits all of them alike:

  off      no tracer
  network  retransmits, tcp_state, resets        (per-packet/per-socket tracepoints)
  all      + oom_kills, sched_wait               (sched_switch fires on every context switch)

Reports median requests/s and p99 per configuration and the ratio to ``off``, and, because
throughput on a shared 2-core machine moves by tens of percent between runs, the exact price
the kernel paid: CPU time spent inside the BPF programs (``kernel.bpf_stats_enabled``, turned on
for the benchmark and restored after; read from bpftrace's program fds in /proc/PID/fdinfo),
per second of traffic and per event.

    .venv/bin/python bench/ebpf_cost.py [--seconds 5] [--rounds 3] [--connections 32]

Needs root (bpftrace; PostgreSQL runs as the postgres user). Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "exchange"))  # reuse the real-server helpers

from chaoslab.observe import bpf  # noqa: E402
from chaoslab.observe.capability import require_ebpf  # noqa: E402

CONFIGS: dict[str, list[str]] = {
    "off": [],
    "network": ["retransmits", "tcp_state", "resets"],
    "all": ["retransmits", "tcp_state", "resets", "oom_kills", "sched_wait"],
}
# BUY and SELL alternate at one price so orders match and the book stays small: a growing book
# would slow later configurations down and read as tracing cost.
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local side = (n % 2 == 0) and "BUY" or "SELL"
  return wrk.format(nil, nil, nil,
    '{"symbol": "BTCUSD", "side": "' .. side .. '", "type": "LIMIT", "quantity": 1, "price": 100}')
end
"""


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]


def wrk(url: str, script: Path, seconds: float, connections: int) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-2xx responses) of one closed-loop wrk run."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                          "-s", str(script), f"{url}/orders"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, _ms(p99[1]) if p99 else float("nan"), int(bad[1]) if bad else 0


class Tracer:
    """bpftrace running the same program an experiment's ``observe: {ebpf: [...]}`` runs."""

    def __init__(self, bpftrace: str, tracers: list[str], workdir: Path) -> None:
        self.proc: subprocess.Popen[str] | None = None
        if not tracers:
            return
        script = workdir / f"{'-'.join(tracers)}.bt"
        script.write_text(bpf.program(tracers, time.monotonic_ns()))
        self.proc = subprocess.Popen([bpftrace, "-f", "json", str(script)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "chaoslab-ebpf-ready" in line:
                break
        else:
            raise RuntimeError("bpftrace did not start")
        # keep reading: a full pipe would block bpftrace's printing, not the traced system
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)

    def bpf_stats(self) -> tuple[int, int]:
        """(run_time_ns, run_cnt) summed over bpftrace's loaded programs."""
        if self.proc is None:
            return 0, 0
        ns = cnt = 0
        fdinfo = Path(f"/proc/{self.proc.pid}/fdinfo")
        for f in fdinfo.iterdir():
            with contextlib.suppress(OSError):
                info = dict(line.split(":", 1) for line in f.read_text().splitlines() if ":" in line)
                if "run_time_ns" in info:
                    ns += int(info["run_time_ns"])
                    cnt += int(info["run_cnt"])
        return ns, cnt

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.wait(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("ebpf_cost: needs root", file=sys.stderr)
        return 2
    bpftrace = require_ebpf()
    from exchange_servers import ApiServer, PgServer, RedisServer

    base = Path(tempfile.mkdtemp(prefix="chaoslab-obs-ebpf-bench-"))
    script = base / "post.lua"
    script.write_text(LUA)
    pg, redis, api = PgServer(), RedisServer(base), None
    results: dict[str, list[tuple[float, float, int]]] = {c: [] for c in CONFIGS}
    cost: dict[str, list[tuple[float, int, int]]] = {c: [] for c in CONFIGS}  # (seconds, ns, events)
    stats = Path("/proc/sys/kernel/bpf_stats_enabled")
    stats_before = stats.read_text().strip() if stats.exists() else None
    try:
        if stats_before is not None:
            stats.write_text("1")
        pg.start()
        redis.start()
        api = ApiServer(base, pg.dsn(pg.create_database()), redis.url, "--log-level", "warning")
        api.start()
        wrk(api.url, script, 2, args.connections)  # warm-up: pools, caches
        names = list(CONFIGS)
        print(f"{'round':>5} {'config':>8} {'req/s':>9} {'p99 ms':>8} {'non-2xx':>8}")
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                tracer = Tracer(bpftrace, CONFIGS[name], base)
                try:
                    ns0, cnt0 = tracer.bpf_stats()
                    t0 = time.monotonic()
                    res = wrk(api.url, script, args.seconds, args.connections)
                    ns1, cnt1 = tracer.bpf_stats()
                    cost[name].append((time.monotonic() - t0, ns1 - ns0, cnt1 - cnt0))
                finally:
                    tracer.stop()
                results[name].append(res)
                print(f"{r + 1:>5} {name:>8} {res[0]:>9.0f} {res[1]:>8.1f} {res[2]:>8}  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                time.sleep(1.0)
        off = statistics.median(x[0] for x in results["off"])
        print()
        print(f"{'config':>8} {'median req/s':>13} {'vs off':>7} {'min..max req/s':>16} {'median p99 ms':>14}")
        for name, runs in results.items():
            rps = statistics.median(x[0] for x in runs)
            p99 = statistics.median(x[1] for x in runs)
            spread = f"{min(x[0] for x in runs):.0f}..{max(x[0] for x in runs):.0f}"
            print(f"{name:>8} {rps:>13.0f} {rps / off:>7.3f} {spread:>16} {p99:>14.1f}")
        print()
        print(f"{'config':>8} {'BPF CPU ms/s':>13} {'events/s':>10} {'ns/event':>9} {'ns/request':>11}")
        for name, rows in cost.items():
            if not CONFIGS[name]:
                continue
            secs = sum(r[0] for r in rows)
            ns = sum(r[1] for r in rows)
            events = sum(r[2] for r in rows)
            requests = sum(x[0] for x in results[name]) * args.seconds
            print(f"{name:>8} {ns / secs / 1e6:>13.2f} {events / secs:>10.0f} {ns / max(events, 1):>9.0f} "
                  f"{ns / max(requests, 1):>11.0f}")
        return 0
    finally:
        if stats_before is not None:
            stats.write_text(stats_before)
        if api is not None:
            api.kill()
        redis.kill()
        pg.cleanup()
        with contextlib.suppress(Exception):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
