"""Trading API throughput vs PostgreSQL's own single-row INSERT rate, same run.

Starts a throwaway PostgreSQL 15 (fsync on), Redis and the trading API, then
1. pgbench: single-row INSERT transactions/s on that PostgreSQL (the persistence limit),
2. open-model POST /orders at rising rates; each step passes when p99 <= 50 ms (latency
   from each order's due time, so a stalled server cannot hide behind a stalled client),
   errors < 1 % and the generator kept up. Reports the highest passing rate, its ratio to
   pgbench, and the figures of every step.

    .venv/bin/python bench/exchange.py [--step-seconds 5] [--rates 500,1000,...]

Needs root (PostgreSQL runs as the postgres user). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
# Reuse the test suite's real-server helpers rather than a second copy of them.
sys.path.insert(0, str(ROOT / "tests" / "exchange"))

P99_BUDGET = 0.050


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time. A hand-rolled client
    because aiohttp's per-request CPU made the generator, not the API, the bottleneck
    on this 2-core machine (it fell behind at about 2,500 requests/s)."""

    def __init__(self, done: Callable[[_Conn, int], None]) -> None:
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.due = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.due:
            self.done(self, 0)

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        i = head.find(b"content-length:")
        length = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        status = int(self.buf[9:12])
        self.buf = self.buf[end + 4 + length :]
        self.done(self, status)


async def generate(url: str, rate: float, seconds: float) -> dict[str, float]:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    max_lag = 0.0
    outstanding = 0
    idle: list[_Conn] = []
    all_done = asyncio.Event()
    requests = []
    for symbol in ("BTCUSD", "ETHUSD"):
        for side in ("BUY", "SELL"):
            for price in range(95, 106):
                body = json.dumps({"symbol": symbol, "side": side, "type": "LIMIT",
                                   "quantity": 1, "price": price}).encode()
                requests.append(
                    b"POST /orders HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(body) + body
                )
    rnd = random.Random(1)
    sending_over = False

    def done(conn: _Conn, status: int) -> None:
        nonlocal errors, outstanding
        if status == 201:
            latencies.append(time.monotonic() - conn.due)
        else:
            errors += 1
        conn.due = 0.0
        outstanding -= 1
        if not conn.closed:
            idle.append(conn)
        if outstanding == 0 and sending_over:
            all_done.set()

    async def connect() -> _Conn:
        _, conn = await loop.create_connection(lambda: _Conn(done), host, int(port))
        return conn

    idle.extend([await connect() for _ in range(64)])
    n = int(rate * seconds)
    t0 = time.monotonic() + 0.05  # monotonic, not uvloop's millisecond loop clock
    for k in range(n):
        due = t0 + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, time.monotonic() - due)
        conn = idle.pop() if idle else await connect()
        outstanding += 1
        conn.send(rnd.choice(requests), due)
    sending_over = True
    if outstanding:
        try:
            async with asyncio.timeout(10):
                await all_done.wait()
        except TimeoutError:
            errors += outstanding
    elapsed = time.monotonic() - t0
    latencies.sort()

    def q(x: float) -> float:
        return latencies[min(len(latencies) - 1, int(x * len(latencies)))] if latencies else float("inf")

    return {"rate": rate, "sent": n, "ok": len(latencies), "errors": errors,
            "achieved": len(latencies) / elapsed, "p50": q(0.50), "p99": q(0.99),
            "max": latencies[-1] if latencies else float("inf"), "max_send_lag": max_lag}


def pgbench_insert_tps(pg: object, db: str, seconds: int, workdir: Path) -> float:
    script = workdir / "insert.sql"
    script.write_text(
        "INSERT INTO bench_orders (id, symbol, quantity) VALUES (gen_random_uuid()::text, 'BTCUSD', 1);\n"
    )
    pg.query(db, "CREATE TABLE bench_orders (id text PRIMARY KEY, symbol text, quantity numeric)")  # type: ignore[attr-defined]
    out = subprocess.run(
        ["/usr/lib/postgresql/15/bin/pgbench", "-n", "-f", str(script), "-c", "16", "-j", "2",
         "-T", str(seconds), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", db],  # type: ignore[attr-defined]
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"tps = ([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"no tps in pgbench output: {out}")
    return float(m.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="500,1000,1500,2000,2500,3000,3500,4000,5000")
    parser.add_argument("--generate", nargs=3, metavar=("URL", "RATE", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:  # child mode: the load generator runs in its own process
        import uvloop

        url, rate, seconds = args.generate
        print(json.dumps(uvloop.run(generate(url, float(rate), float(seconds)))))
        return 0

    from exchange_servers import ApiServer, PgServer, RedisServer

    base = Path(tempfile.mkdtemp(prefix="chaoslab-exchange-bench-"))
    pg = PgServer()
    redis = RedisServer(base)
    api = None
    try:
        pg.start()
        redis.start()
        db = pg.create_database()
        tps = pgbench_insert_tps(pg, pg.create_database(), int(max(3, args.step_seconds)), base)
        print(f"pgbench single-row INSERT: {tps:,.0f} transactions/s (16 clients)")
        api = ApiServer(base, pg.dsn(db), redis.url, "--log-level", "warning")
        api.start()
        # Warm up the connection pool, the JIT-less interpreter paths and PostgreSQL caches.
        subprocess.run([sys.executable, __file__, "--generate", api.url, "200", "2"],
                       capture_output=True, check=True)
        best: dict[str, float] | None = None
        print(f"{'rate/s':>8} {'ok/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} {'lag ms':>7}")
        failed_in_a_row = 0
        for rate in (float(r) for r in args.rates.split(",")):
            # The machine is shared: a step gets a second try before it counts as failed.
            for attempt in (1, 2):
                out = subprocess.run(
                    [sys.executable, __file__, "--generate", api.url, str(rate), str(args.step_seconds)],
                    capture_output=True, text=True, check=True,
                ).stdout
                r = json.loads(out)
                passed = (r["p99"] <= P99_BUDGET and r["errors"] <= 0.01 * r["sent"]
                          and r["max_send_lag"] <= P99_BUDGET)
                print(f"{rate:>8.0f} {r['achieved']:>8.0f} {r['p50'] * 1000:>8.1f} {r['p99'] * 1000:>8.1f} "
                      f"{r['max'] * 1000:>8.1f} {r['errors']:>7.0f} {r['max_send_lag'] * 1000:>7.1f}"
                      f"  {'pass' if passed else 'FAIL'} (try {attempt}, load {os.getloadavg()[0]:.1f})")
                time.sleep(1.0)
                if passed:
                    break
            if passed:
                failed_in_a_row = 0
                if best is None or r["achieved"] > best["achieved"]:
                    best = r
            else:
                failed_in_a_row += 1
                if failed_in_a_row == 2:
                    break
        stored = pg.query(db, "SELECT count(*) AS n FROM orders")[0]["n"]
        print(f"orders in PostgreSQL after the run: {stored}")
        if best is None:
            print("no rate met p99 <= 50 ms")
            return 1
        print(f"highest rate with p99 <= 50 ms: {best['achieved']:,.0f} acknowledged orders/s "
              f"(p99 {best['p99'] * 1000:.1f} ms) = {best['achieved'] / tps:.2f}x pgbench's "
              f"{tps:,.0f} single-row INSERT tps")
        return 0
    finally:
        if api is not None:
            api.kill()
        redis.kill()
        pg.cleanup()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
