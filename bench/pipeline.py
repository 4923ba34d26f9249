"""Pipeline throughput: records/s acknowledged end to end at p99 <= 1 s, beside the broker
alone with its Kafka client, in the same run.

Brings up a private copy of examples/pipeline/stack.yaml on free ports (Tansu on SeaweedFS
S3, PostgreSQL, Redis, the fault proxy, gateway, producer, consumer), then
1. the broker alone: aiokafka (the client the pipeline uses) producing straight to Tansu with
   acks=all, as fast as it acknowledges (records/s);
2. the pipeline, one record per request: open-model POST /logs through the gateway at rising
   rates (chaoslab's load generator; latency from each record's due time), a step passing when
   p99 <= 1 s, errors < 1 % and the generator kept up; then how long the consumer took to have
   every acknowledged record of the step in PostgreSQL (GET /settled);
3. the pipeline, batched: open-model POST /logs/batch, --batch records per request (a request is
   due every batch/rate seconds; each record's latency runs from its request's due time), at
   rising record rates; a step passes on the same p99, error and lag bounds, and only if every
   acknowledged record is in PostgreSQL (events or dead_letters) and the consumer had them all
   within DRAIN_BUDGET of the step's end: end to end, nothing lost.
Reports the highest passing rate of each and their ratio to the broker alone.

    .venv/bin/python bench/pipeline.py [--step-seconds 5] [--rates 100,200,...] [--batch-rates 1000,2000,...]

Needs root (PostgreSQL runs as the postgres user). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this file is named pipeline.py: its own directory must not shadow the pipeline package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "pipeline")]  # the tests' private-stack helper

from pipeline_stack import Pipeline, pipeline_stack  # noqa: E402

from chaoslab.experiment.workload import LoadSpec  # noqa: E402
from chaoslab.journal import RunClock  # noqa: E402
from chaoslab.load import LoadGenerator  # noqa: E402

P99_BUDGET = 1.0
DRAIN_BUDGET = 2.5
"""Seconds after a batched step's end within which the consumer must have stored all of it."""
BODY = {"id": "{{key}}", "source": "bench", "level": "INFO", "message": "record {{seq}} " + "x" * 100,
        "amount": "12.5000"}


async def broker_alone(p: Pipeline, n: int) -> float:
    from aiokafka import AIOKafkaProducer

    value = json.dumps({**BODY, "id": "b"}).encode()
    prod = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{p.ports['KAFKA']}", acks="all", linger_ms=2,
                            max_batch_size=256 * 1024)
    await prod.start()
    try:
        await (await prod.send("bench-alone", value))  # topic creation outside the timing
        t = time.perf_counter()
        futs = [await prod.send("bench-alone", value, key=str(i).encode()) for i in range(n)]
        await asyncio.gather(*futs)
        return n / (time.perf_counter() - t)
    finally:
        await prod.stop()


def _q(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def step(p: Pipeline, rate: float, seconds: float, hist: Path) -> dict[str, Any]:
    spec = LoadSpec.model_validate({"http": {
        "url": p.gateway + "/logs", "method": "POST", "rate": rate, "timeout": 5, "body": BODY,
        "ack": {"status": [201], "id": "$.id"}, "concurrency": 5000, "connections": 256}})
    gen = LoadGenerator(spec, RunClock(), hist)
    stop = asyncio.Event()
    task = asyncio.create_task(gen.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    # operations still in flight when the step ended are cut: out of the rates, as in the analysis
    ops = [o for o in (json.loads(x) for x in hist.read_text().splitlines()[1:]) if not o.get("cut")]
    ok = sorted(o["latency"] for o in ops if o["outcome"] == "ok")
    lags = sorted(o["t_sent"] - o["t_scheduled"] for o in ops if o["t_sent"] is not None)
    acked = [o["ack_id"] for o in ops if o.get("ack")]
    t = time.perf_counter()
    events, _ = await asyncio.to_thread(p.settled, gen.run_token + "-", 120.0)
    drain = time.perf_counter() - t
    errors = 1 - len(ok) / max(1, len(ops))
    p99 = _q(ok, 0.99)
    return {"rate": rate, "ops": len(ops), "acknowledged": len(acked), "error_rate": round(errors, 4),
            "p50": round(_q(ok, 0.5), 4), "p99": round(p99, 4), "lag_p99": round(_q(lags, 0.99), 4),
            "stored": len(set(acked) & set(events)), "drain_s": round(drain, 2),
            "passed": p99 <= P99_BUDGET and errors < 0.01 and _q(lags, 0.99) <= 0.1}


async def batch_step(p: Pipeline, rate: float, seconds: float, size: int) -> dict[str, Any]:
    import aiohttp

    token = secrets.token_hex(4)
    every = size / rate
    t0 = time.perf_counter() + 0.1

    async def one(s: aiohttp.ClientSession, k: int) -> tuple[float, float, float, int, list[dict[str, Any]]]:
        due = t0 + k * every
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent = time.perf_counter()
        recs = [{**BODY, "id": f"{token}-{k}-{i}", "message": f"record {k}-{i} " + "x" * 100} for i in range(size)]
        status = 0
        try:
            async with s.post(p.gateway + "/logs/batch", json=recs) as r:
                status = r.status
                results = (await r.json())["results"] if r.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, ValueError):
            results = []
        return due, sent, time.perf_counter(), status, results

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=10)) as s:
        outs = await asyncio.gather(*(one(s, k) for k in range(int(seconds / every))))
    end = time.perf_counter()
    acked = [x["id"] for *_, res in outs for x in res if x.get("status") == 201]
    # what the others got: a record's own status, or the whole request's (0: no answer)
    refused = Counter(str(x.get("status")) for *_, res in outs for x in res if x.get("status") != 201)
    refused.update({str(status): size for *_, status, res in outs if not res})
    ok = sorted(done - due for due, _, done, _, res in outs for x in res if x.get("status") == 201)
    lags = sorted(sent - due for due, sent, *_ in outs)
    events, dead = await asyncio.to_thread(p.settled, token + "-", 120.0)
    drain = time.perf_counter() - end
    placed = set(events) | set(dead)
    lost = len(set(acked) - placed)
    total = len(outs) * size
    errors = 1 - len(acked) / max(1, total)
    p99 = _q(ok, 0.99)
    return {"rate": rate, "batch": size, "records": total, "acknowledged": len(acked),
            "error_rate": round(errors, 4), "refused": dict(refused), "p50": round(_q(ok, 0.5), 4),
            "p99": round(p99, 4), "lag_p99": round(_q(lags, 0.99), 4), "stored": len(set(acked) & placed), "lost": lost,
            "twice": len(events) + len(dead) - len(placed), "drain_s": round(drain, 2),
            "passed": (p99 <= P99_BUDGET and errors < 0.01 and _q(lags, 0.99) <= 0.1 and lost == 0
                       and drain <= DRAIN_BUDGET)}


async def climb(rates: list[float], run: Any) -> float:
    """The highest rate that passed, climbing until two steps in a row fail."""
    best, misses = 0.0, 0
    for i, rate in enumerate(rates):
        r = await run(i, rate)
        print(json.dumps(r), flush=True)
        if r["passed"]:
            best, misses = rate, 0
        else:
            misses += 1
            if misses == 2:  # one noisy step on a shared machine is not the limit
                break
    return best


async def main(args: argparse.Namespace) -> None:
    with pipeline_stack() as p, tempfile.TemporaryDirectory() as tmp:
        alone = await broker_alone(p, args.broker_records)
        print(f"broker alone (aiokafka -> Tansu on S3, acks=all): {alone:,.0f} records/s")
        single = batched = 0.0
        if args.rates:
            single = await climb(args.rates, lambda i, rate: step(p, rate, args.step_seconds, Path(tmp) / f"h{i}.jsonl"))
            print(f"pipeline, one record per request: {single:,.0f} records/s acknowledged at p99 <= "
                  f"{P99_BUDGET:g} s = {single / alone:.2%} of the broker alone ({alone:,.0f}/s)")
        if args.batch_rates:
            batched = await climb(args.batch_rates, lambda _i, rate: batch_step(p, rate, args.step_seconds, args.batch))
            print(f"pipeline, {args.batch} records per request: {batched:,.0f} records/s acknowledged at p99 <= "
                  f"{P99_BUDGET:g} s and stored within {DRAIN_BUDGET:g} s, none lost = {batched / alone:.2%} "
                  f"of the broker alone")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--step-seconds", type=float, default=5.0)
    rates = lambda s: [float(x) for x in s.split(",") if x]  # noqa: E731
    ap.add_argument("--rates", type=rates, default=[100, 200, 400, 600, 800, 1000, 1300, 1600, 2000],
                    help="records/s of the one-record-per-request steps (empty: none)")
    ap.add_argument("--batch-rates", type=rates, default=[1000, 2000, 3000, 4000, 6000, 8000, 10000],
                    help="records/s of the batched steps (empty: none)")
    ap.add_argument("--batch", type=int, default=500, help="records per POST /logs/batch")
    ap.add_argument("--broker-records", type=int, default=20000)
    asyncio.run(main(ap.parse_args()))
