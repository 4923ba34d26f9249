"""The pipeline end to end on its real parts (Tansu on SeaweedFS S3, PostgreSQL, Redis): the
happy path, the reconciliation (every acknowledged record in PostgreSQL or the dead-letter
table exactly once, read straight from PostgreSQL), and the broker's durability on S3."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
import httpx
import pytest
from pipeline_stack import Pipeline, record
from tests.conftest import ROOT, free_ports, wait_for_port

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_happy_path_every_acknowledged_record_is_placed_exactly_once(chaos_stack: Pipeline) -> None:
    p = chaos_stack
    good = [record(f"{p.token}-ok-{i}") for i in range(300)]
    bad = {
        f"{p.token}-enum": record(f"{p.token}-enum", level="LOUD"),
        f"{p.token}-dec": record(f"{p.token}-dec", amount="1.123456"),
        f"{p.token}-miss": {k: v for k, v in record(f"{p.token}-miss").items() if k != "source"},
        f"{p.token}-type": record(f"{p.token}-type", amount=[1]),
    }
    out = p.post(good + list(bad.values()))
    assert {s for _, s, _ in out} == {201}, sorted({s for _, s, _ in out})
    ids = [i for i, _, _ in out]
    where = p.settle(ids)
    misplaced = {i: w for i, w in where.items() if len(w) != 1}
    assert not misplaced, (
        f"{len(misplaced)} ids not placed exactly once, e.g. {list(misplaced.items())[:5]}"
    )
    assert all(where[r["id"]] == ["events"] for r in good)
    assert where[f"{p.token}-enum"] == ["dead_letters:unknown_enum"]
    assert where[f"{p.token}-dec"] == ["dead_letters:bad_decimal"]
    assert where[f"{p.token}-miss"] == ["dead_letters:missing_field"]
    assert where[f"{p.token}-type"] == ["dead_letters:wrong_type"]
    # the seeds' metric names, as Prometheus scrapes them
    producer = httpx.get(f"http://127.0.0.1:{p.ports['PRODUCER']}/metrics", timeout=5).text
    consumer = httpx.get(p.consumer + "/metrics", timeout=5).text
    sent = float(
        next(
            x for x in producer.splitlines() if x.startswith("log_events_sent_success_total")
        ).split()[-1]
    )
    assert sent >= len(ids)
    assert 'log_events_processed_total{outcome="stored"}' in consumer
    assert 'resilience4j_circuitbreaker_state{name="postgres",state="closed"} 1.0' in consumer
    # the batches were archived to S3 (read from SeaweedFS directly)
    s3 = boto3.client(
        "s3",
        endpoint_url=p.s3,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 30
    while True:
        objs = s3.list_objects_v2(Bucket="pipeline-archive", Prefix="archive/logs/").get(
            "KeyCount", 0
        )
        if objs or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert objs > 0


def test_the_edge_refuses_what_it_cannot_parse(chaos_stack: Pipeline) -> None:
    g = chaos_stack.gateway + "/logs"
    truncated = httpx.post(g, content=b'{"id": "x", "source": "a", "lev', timeout=5)
    oversize = httpx.post(g, json={"id": "big", "message": "x" * 100_000}, timeout=5)
    assert (truncated.status_code, truncated.json()["error"]) == (400, "invalid_json")
    assert oversize.status_code == 413
    assert chaos_stack.placements(["x", "big"]) == {"x": [], "big": []}


def test_a_batch_is_answered_per_record_and_placed_once_even_sent_twice(chaos_stack: Pipeline) -> None:
    """POST /logs/batch: one answer per record, in order, each what POST /logs would answer; the
    batch sent again (a client retrying it) is stored once, by id, in the consumer's one-statement
    writes."""
    p = chaos_stack
    good = [record(f"{p.token}-b-{i}") for i in range(300)]
    batch: list[Any] = [
        *good[:150],
        "not an object",
        {**record(f"{p.token}-b-big"), "message": "x" * 70_000},
        {**record("x"), "id": 7},
        record(f"{p.token}-b-dec", amount="1.123456"),  # passes the envelope: the consumer dead-letters it
        *good[150:],
    ]
    for _ in range(2):
        r = httpx.post(p.gateway + "/logs/batch", json=batch, timeout=30)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == [201] * 150 + [400, 413, 400, 201] + [201] * 150
        assert [x["id"] for x in results if x["status"] == 201] == [
            *(g["id"] for g in good[:150]), f"{p.token}-b-dec", *(g["id"] for g in good[150:])
        ]
        assert all(isinstance(x["offset"], int) for x in results if x["status"] == 201)
    ids = [g["id"] for g in good] + [f"{p.token}-b-dec"]
    where = p.settle(ids)
    assert all(where[g["id"]] == ["events"] for g in good), [w for w in where.items() if w[1] != ["events"]][:5]
    assert where[f"{p.token}-b-dec"] == ["dead_letters:bad_decimal"]
    assert p.placements([f"{p.token}-b-big"]) == {f"{p.token}-b-big": []}
    # a batch that is not a list, or too long, is refused whole
    assert httpx.post(p.gateway + "/logs/batch", json={"id": "x"}, timeout=5).status_code == 400
    assert httpx.post(p.gateway + "/logs/batch", json=[record("x")] * 1001, timeout=30).status_code == 400


def test_the_broker_keeps_acknowledged_records_across_sigkill(chaos_stack: Pipeline) -> None:
    """Tansu on S3: records acknowledged with acks=all are read back after the broker is
    SIGKILLed and restarted by the stack (on memory storage they would be gone)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"durability-{chaos_stack.token}"

    async def produce() -> int:
        prod = AIOKafkaProducer(bootstrap_servers=chaos_stack.kafka, acks="all")
        await prod.start()
        try:
            futs = [await prod.send(topic, f"r{i}".encode()) for i in range(500)]
            await asyncio.gather(*futs)
        finally:
            await prod.stop()
        return len(futs)

    async def consume() -> set[bytes]:
        cons = AIOKafkaConsumer(
            topic,
            bootstrap_servers=chaos_stack.kafka,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await cons.start()
        got: set[bytes] = set()
        try:
            deadline = time.monotonic() + 30
            while len(got) < 500 and time.monotonic() < deadline:
                for msgs in (await cons.getmany(timeout_ms=500)).values():
                    got |= {m.value for m in msgs if m.value is not None}
        finally:
            await cons.stop()
        return got

    assert asyncio.run(produce()) == 500
    before = chaos_stack.stack.resolve("broker")["pid"]
    os.kill(before, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        st = chaos_stack.stack.ps()["services"]["broker"]
        if st.get("pid") not in (None, before) and st.get("health") == "healthy":
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    assert asyncio.run(consume()) == {f"r{i}".encode() for i in range(500)}


def test_back_pressure_answers_429_with_retry_after(chaos_stack: Pipeline) -> None:
    """A producer with a small buffer behind a slow broker: the records beyond the buffer get
    429 + Retry-After through the gateway, the others are acknowledged, nothing hangs."""
    p = chaos_stack
    prod_port, gw_port = free_ports(2)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "systems" / "pipeline" / "src")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chaoslab_pipeline.producer",
                "--port",
                str(prod_port),
                "--bootstrap",
                p.kafka,
                "--max-inflight",
                "5",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chaoslab_pipeline.gateway",
                "--port",
                str(gw_port),
                "--producer-url",
                f"http://127.0.0.1:{prod_port}",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for_port(prod_port, 30)
        wait_for_port(gw_port, 30)
        deadline = time.monotonic() + 30
        while not httpx.get(f"http://127.0.0.1:{prod_port}/health", timeout=2).json()["connected"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # every acknowledgement 400 ms late: the 5-record buffer stays full
        httpx.post(
            f"{p.proxy_api}/proxies/kafka/toxics",
            json={
                "name": "bp",
                "type": "latency",
                "stream": "downstream",
                "attributes": {"latency": 400},
            },
            timeout=5,
        )
        try:

            async def burst() -> list[tuple[int, str | None]]:
                async with httpx.AsyncClient(timeout=10) as c:

                    async def one(i: int) -> tuple[int, str | None]:
                        r = await c.post(
                            f"http://127.0.0.1:{gw_port}/logs", json=record(f"{p.token}-bp-{i}")
                        )
                        return r.status_code, r.headers.get("Retry-After")

                    return list(await asyncio.gather(*(one(i) for i in range(40))))

            answers = asyncio.run(burst())
        finally:
            httpx.delete(f"{p.proxy_api}/proxies/kafka/toxics/bp", timeout=5)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    statuses = [s for s, _ in answers]
    assert statuses.count(429) >= 20 and statuses.count(201) >= 5, statuses
    assert set(statuses) <= {201, 429}, statuses
    assert all(ra == "1" for s, ra in answers if s == 429)
