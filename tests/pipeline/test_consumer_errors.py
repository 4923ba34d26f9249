"""The consumer against PostgreSQL errors it did not plan for (issue 24, item 4): a cancelled
statement, a real deadlock, a constraint it does not know. Each is a real error raised by the
real server on the consumer's own statement; after each, every acknowledged record must be in
PostgreSQL exactly once and the consumer must still be the same process, consuming."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest
from pipeline_stack import Pipeline, record

pytestmark = [pytest.mark.root, pytest.mark.slow]

# a backend of the consumer waiting for a lock we hold (pg_stat_activity's query text is no help:
# asyncpg's extended-protocol statements leave it showing the pool's last reset query)
WAITING = (
    "select distinct a.pid from pg_locks l join pg_stat_activity a using (pid) "
    "where not l.granted and a.usename = 'pipeline' and a.pid <> pg_backend_pid()"
)


async def post_all(p: Pipeline, records: list[dict[str, Any]]) -> list[str]:
    """POST every record at once; the ids the gateway acknowledged (201)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:

        async def one(rec: dict[str, Any]) -> str | None:
            async with s.post(p.gateway + "/logs", data=json.dumps(rec)) as r:
                await r.read()
                return str(rec["id"]) if r.status == 201 else None

        return [i for i in await asyncio.gather(*(one(r) for r in records)) if i is not None]


async def wait_rows(conn: asyncpg.Connection, query: str, timeout: float, *args: Any) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await conn.fetch(query, *args)
        if rows or time.monotonic() > deadline:
            return list(rows)
        await asyncio.sleep(0.02)


@pytest.fixture
def pipeline(chaos_stack: Pipeline) -> Pipeline:
    """The pipeline once the consumer has created its tables (at its first batch)."""
    chaos_stack.post([record(f"{chaos_stack.token}-warm")])
    assert chaos_stack.settle([f"{chaos_stack.token}-warm"])[f"{chaos_stack.token}-warm"] == ["events"]
    return chaos_stack


def consumer_pid(p: Pipeline) -> int:
    assert p.stack is not None
    return int(p.stack.resolve("consumer")["pid"])


def check_placed_once(p: Pipeline, acked: list[str], refused: frozenset[str] = frozenset()) -> None:
    """Every acknowledged id in events (or, if PostgreSQL refused it, in dead_letters), once."""
    prefix = acked[0].rsplit("-", 1)[0] + "-"
    events, dead = p.settled(prefix, wait=90)
    assert len(events) == len(set(events)) and len(dead) == len(set(dead))
    assert set(events) & set(dead) == set()
    missing = sorted(set(acked) - refused - set(events))
    assert not missing, _where(p, missing)
    assert refused == set(dead) & set(acked)
    where = p.placements(sorted(refused))
    assert all(w == ["dead_letters:store_rejected"] for w in where.values()), where


def _where(p: Pipeline, missing: list[str]) -> str:
    """What a failure needs to be explained: where the missing records are (PostgreSQL, once more,
    a few seconds later), the consumer's own counters and the end of its log."""
    time.sleep(5)
    assert p.stack is not None
    health = httpx.get(f"{p.consumer}/health", timeout=10).text
    return (f"acknowledged, not in events at settle: {missing[:10]}; 5 s later: {p.placements(missing)}; "
            f"consumer health: {health}; consumer log:\n{p.stack.logs('consumer', lines=80)}")


def run(p: Pipeline, scenario: Callable[[asyncpg.Connection], Awaitable[list[str]]]) -> list[str]:
    async def go() -> list[str]:
        conn = await asyncpg.connect(p.dsn)
        try:
            return await scenario(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.mark.parametrize("cancels", [1, 6])
def test_a_cancelled_statement_loses_nothing_and_the_consumer_goes_on(
    pipeline: Pipeline, cancels: int
) -> None:
    """pg_cancel_backend on the consumer's insert while it waits for our lock: once (the batch is
    retried), then six times in a row (more than it retries: the batch is parked in the
    dead-letter topic as storage_unavailable and redriven into events)."""
    p = pipeline
    pid = consumer_pid(p)
    prefix = f"{p.token}-cancel{cancels}"

    async def scenario(conn: asyncpg.Connection) -> list[str]:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("lock table events in share row exclusive mode")  # inserts wait
        try:
            acked = await post_all(p, [record(f"{prefix}-{i}") for i in range(40)])
            done = 0
            deadline = time.monotonic() + 60
            while done < cancels and time.monotonic() < deadline:
                rows = await wait_rows(conn, WAITING, 10)
                for r in rows:
                    done += bool(await conn.fetchval("select pg_cancel_backend($1)", r["pid"]))
                await asyncio.sleep(0.05)  # the consumer gets its error and tries again
            assert done >= cancels, f"cancelled {done} statements of the consumer, wanted {cancels}"
        finally:
            await tx.rollback()
        return acked

    acked = run(p, scenario)
    assert len(acked) == 40
    check_placed_once(p, acked)
    assert consumer_pid(p) == pid  # survived, not restarted
    assert p.consumer_health()["status"] in ("ok", "degraded")


def test_a_real_deadlock_on_the_consumer_loses_nothing(pipeline: Pipeline) -> None:
    """Our transaction holds an uncommitted row with an id the consumer is about to insert (its
    insert waits for us), then asks for a SHARE lock on events, which waits for the consumer's
    ROW EXCLUSIVE: a cycle. Our side waits 5 s before looking for deadlocks, the consumer's 1 s,
    so the consumer's statement is the one PostgreSQL aborts with deadlock_detected (unless the
    machine was too slow to close the cycle within that 1 s: then ours is, and we try again)."""
    p = pipeline
    pid = consumer_pid(p)
    prefix = f"{p.token}-deadlock"
    records = [record(f"{prefix}-{i}") for i in range(20)]
    admin = p.dsn.replace("pipeline:pipeline@", "postgres@")

    async def scenario(_conn: asyncpg.Connection) -> list[str]:
        conn = await asyncpg.connect(admin)  # a superuser may set its own deadlock_timeout
        try:
            for attempt in range(3):  # a machine too slow to close the cycle in 1 s: try again
                tx = conn.transaction()
                await tx.start()
                try:
                    await conn.execute("set local deadlock_timeout = '5s'")
                    key = records[7]
                    await conn.execute(
                        "insert into events (id, source, level, message, amount) values ($1, 'x', 'INFO', 'x', 1)",
                        f"{key['id']}",
                    )
                    acked = await post_all(p, records)
                    waiting = await wait_rows(conn, WAITING, 20)
                    assert waiting, "the consumer never waited for our row"
                    try:
                        await conn.execute("lock table events in share mode")  # closes the cycle
                    except asyncpg.DeadlockDetectedError:
                        pass  # ours was the victim: the consumer's check had run before the cycle
                    else:
                        return acked  # the consumer's statement was the victim, so we got the lock
                finally:
                    await tx.rollback()
                records[:] = [record(f"{prefix}-{attempt}-{i}") for i in range(20)]
            raise AssertionError("the deadlock never fell on the consumer's side")
        finally:
            await conn.close()

    acked = run(p, scenario)
    assert len(acked) == 20
    check_placed_once(p, acked)
    assert consumer_pid(p) == pid


def test_a_constraint_the_consumer_does_not_know_dead_letters_only_the_refused_rows(
    pipeline: Pipeline,
) -> None:
    """A trigger raises check_violation for some rows (as a CHECK added by someone else would):
    those go to dead_letters as store_rejected, the rest of their batch to events."""
    p = pipeline
    pid = consumer_pid(p)
    prefix = f"{p.token}-check"
    trigger = f"refuse_{p.token}"
    records = [record(f"{prefix}-{i}", message="forbidden" if i % 5 == 0 else "fine") for i in range(50)]
    refused = frozenset(r["id"] for r in records if r["message"] == "forbidden")

    async def scenario(conn: asyncpg.Connection) -> list[str]:
        await conn.execute(f"""
            create function {trigger}() returns trigger language plpgsql as $$
            begin
              if new.message = 'forbidden' then
                raise exception 'message forbidden' using errcode = 'check_violation';
              end if;
              return new;
            end $$;
            create trigger {trigger} before insert on events for each row execute function {trigger}();
        """)
        try:
            acked = await post_all(p, records)
            await asyncio.to_thread(check_placed_once, p, acked, refused)
            return acked
        finally:
            await conn.execute(f"drop trigger {trigger} on events; drop function {trigger}()")

    acked = run(p, scenario)
    assert len(acked) == 50
    assert consumer_pid(p) == pid


def test_a_record_nested_too_deep_for_the_parser_is_dead_lettered_not_a_crash(pipeline: Pipeline) -> None:
    """60 KB of nested arrays (under the 64 KiB limit) makes json.loads raise RecursionError, not
    ValueError: straight from Kafka it ended the consumer's loop (now: the process, and its
    restart met the same record: a crash loop). It is invalid_json like any unparsable record,
    at the gateway (400, not 500) and in the consumer (the dead-letter table)."""
    from aiokafka import AIOKafkaProducer

    p = pipeline
    pid = consumer_pid(p)
    deep = b"[" * 30_000 + b"]" * 30_000
    edge = httpx.post(p.gateway + "/logs", content=deep, timeout=10)
    assert (edge.status_code, edge.json()["error"]) == (400, "invalid_json")
    rid = f"{p.token}-deep"

    async def produce() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=p.kafka, acks="all")
        await prod.start()
        try:
            await prod.send_and_wait("logs", deep, key=rid.encode())
        finally:
            await prod.stop()

    asyncio.run(produce())
    after = [record(f"{p.token}-after-deep")]
    p.post(after)
    where = p.settle([rid, after[0]["id"]], timeout=60)
    assert where == {rid: ["dead_letters:invalid_json"], after[0]["id"]: ["events"]}
    assert consumer_pid(p) == pid
