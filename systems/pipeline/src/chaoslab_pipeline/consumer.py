"""``python -m chaoslab_pipeline.consumer --port N --bootstrap ... --pg-dsn ... --redis-url ... --s3-url ...``

Reads the ``logs`` topic in the consumer group ``pipeline``, and per batch:
1. parses and validates every record (chaoslab_pipeline.schema);
2. stores the valid ones in PostgreSQL (``events``, keyed by id: a redelivered record is
   stored once) behind a breaker; while PostgreSQL is unavailable they go to the
   dead-letter topic with reason ``storage_unavailable`` and to the Redis cache
   (cache-only mode), and the partition keeps moving;
3. sends the invalid ones to the dead-letter topic ``logs.dlq`` (reason ``invalid:<kind>``);
4. caches valid records in Redis (``event:<id>``, best effort, behind a breaker);
5. archives the batch to S3 (``archive/<partition>/<first>-<last>.jsonl``, best effort);
6. commits the offsets, only after steps 2 and 3 are durable (PostgreSQL committed, the
   dead-letter record acknowledged with acks=all). If neither can be made durable the
   partition is rewound and retried: it stalls rather than loses.

A second loop drains the dead-letter topic (group ``pipeline-redrive``) into PostgreSQL:
``storage_unavailable`` records into ``events`` once the database is back, invalid ones
into ``dead_letters`` for a human. Both inserts ignore ids already present.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from botocore.exceptions import ClientError

from chaoslab_pipeline import schema
from chaoslab_pipeline.breaker import CircuitBreaker, CircuitOpenError
from chaoslab_pipeline.metrics import Metrics

log = logging.getLogger("chaoslab_pipeline.consumer")
TOPIC, DLQ = "logs", "logs.dlq"

DDL = """
create table if not exists events (
  id text primary key, source text not null, level text not null, message text not null,
  amount numeric(20,4), stored_at timestamptz not null default now());
create table if not exists dead_letters (
  id text primary key, kind text not null, reason text not null, raw text,
  at timestamptz not null default now());
"""
INSERT_EVENT = ("insert into events (id, source, level, message, amount) values ($1, $2, $3, $4, $5) "
                "on conflict (id) do nothing")
# a whole batch in one statement and one round trip (executemany costs one per row); duplicate ids
# inside the batch and ids already stored are skipped alike
INSERT_EVENTS = ("insert into events (id, source, level, message, amount) "
                 "select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[]) "
                 "on conflict (id) do nothing")
INSERT_DEAD = "insert into dead_letters (id, kind, reason, raw) values ($1, $2, $3, $4) on conflict (id) do nothing"
# errors that say "the database is not there", as opposed to "this row is wrong"
_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, CircuitOpenError)
# the database answered, but this statement lost for reasons of the moment (a deadlock, a
# serialization failure, a cancelled statement, a lock not granted): its transaction committed
# nothing, so the same rows are simply written again
_RETRY = (asyncpg.TransactionRollbackError, asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
RETRIES = 3
# PostgreSQL refuses a row: a value out of range, a constraint or a trigger's exception the code
# does not know about. The row is wrong, not the database: find which rows, dead-letter them
# (store_rejected), store the rest
_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError)
# Any other PostgreSQL error (a table missing, a privilege revoked, _RETRY after RETRIES tries) is
# treated as "the database is not usable now": the batch goes to the dead-letter topic as
# storage_unavailable and the redrive loop writes it once PostgreSQL takes it again.
POLL_RECORDS = 2000
"""Records per poll, over all partitions: bigger batches, fewer round trips per record."""
EXIT_LOOP_DIED = 70
"""Exit status when a loop ends on an error it does not handle: the process exits so that its
restart policy (the stack's, Docker's) brings a fresh one back, rather than idling half dead."""


@dataclass
class Letter:
    id: str
    kind: str
    reason: str
    raw: str


def _row(v: dict[str, Any]) -> tuple[Any, ...]:
    return (v["id"], v["source"], v["level"], v["message"], v["amount"])


class Consumer:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.accept = frozenset(a.bug_accept or ())
        self.pg_breaker = CircuitBreaker("postgres", failure_threshold=2, reset_timeout=2.0)
        self.redis_breaker = CircuitBreaker("redis", failure_threshold=2, reset_timeout=2.0)
        self.s3_breaker = CircuitBreaker("s3", failure_threshold=2, reset_timeout=3.0)
        self.metrics = Metrics()
        for b in (self.pg_breaker, self.redis_breaker, self.s3_breaker):
            self.metrics.watch(b)
        self.pool: asyncpg.Pool | None = None
        self.redis = aioredis.from_url(a.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.s3: Any = None
        self.dlq: AIOKafkaProducer | None = None
        self.stats: dict[str, Any] = {"stored": 0, "dead_lettered": 0, "redriven": 0, "batches": 0,
                                      "last_progress": time.time(), "started": time.time()}
        self.tasks: list[asyncio.Task[None]] = []
        self.fatal = False  # a loop died: exit with EXIT_LOOP_DIED
        # per loop: its Kafka consumer and the next offset it has finished with, per partition
        self.readers: dict[str, AIOKafkaConsumer] = {}
        self.done: dict[str, dict[TopicPartition, int]] = {"main": {}, "redrive": {}}

    # --- dependencies ----------------------------------------------------------------
    async def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            pool = await asyncpg.create_pool(self.a.pg_dsn, min_size=1, max_size=4, timeout=2.0, command_timeout=3.0)
            async with pool.acquire() as conn:
                await conn.execute(DDL)
            self.pool = pool
        return self.pool

    async def _pg(self, fn: Any) -> Any:
        """``fn(conn)`` behind the PostgreSQL breaker, tried again on a _RETRY error."""
        async def attempt() -> Any:
            pool = await asyncio.wait_for(self._pool(), 3.0)
            async with pool.acquire(timeout=2.0) as conn:
                try:
                    return await fn(conn)
                except (*_REFUSED, *_RETRY) as exc:
                    return exc  # the database answered: the breaker must not count it as down
        for n in range(RETRIES):
            result = await self.pg_breaker.call(attempt)
            if isinstance(result, _RETRY) and n < RETRIES - 1:
                log.warning("PostgreSQL %s (%s): trying again", type(result).__name__, result.sqlstate)
                await asyncio.sleep(0.2 * 2 ** n)
                continue
            if isinstance(result, (*_REFUSED, *_RETRY)):
                raise result
            return result

    async def _kafka_client(self, make: Any) -> Any:
        while True:
            client = make()
            try:
                await client.start()
                return client
            except (KafkaError, OSError) as exc:
                log.warning("broker not reachable yet: %s", exc)
                await client.stop()
                await asyncio.sleep(1.0)

    # --- the main loop -----------------------------------------------------------------
    async def run(self) -> None:
        self.dlq = await self._kafka_client(lambda: AIOKafkaProducer(
            bootstrap_servers=self.a.bootstrap, acks="all", request_timeout_ms=5000, linger_ms=2))
        consumer = await self._kafka_client(lambda: AIOKafkaConsumer(
            TOPIC, bootstrap_servers=self.a.bootstrap, group_id="pipeline", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=POLL_RECORDS, session_timeout_ms=6000,
            heartbeat_interval_ms=1000, request_timeout_ms=15000))
        self.readers["main"] = consumer
        try:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=200, max_records=POLL_RECORDS)
                except KafkaError as exc:
                    log.warning("poll: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                # the partitions' batches side by side: each waits on PostgreSQL, Redis, S3 and the
                # DLQ, and they share nothing but the clients
                parts = list(batches.items())
                ends = await asyncio.gather(*(self._durable(tp, msgs) for tp, msgs in parts))
                commit: dict[TopicPartition, int] = {}
                for (tp, msgs), end in zip(parts, ends, strict=True):
                    if end is None:
                        consumer.seek(tp, msgs[0].offset)  # read it again later
                    else:
                        self.done["main"][tp] = commit[tp] = end
                if commit:
                    try:
                        await consumer.commit(commit)
                    except KafkaError as exc:
                        # redelivery is harmless: both stores ignore ids they hold
                        log.warning("commit %s: %s", sorted(commit), exc)
                if len(commit) < len(parts):
                    await asyncio.sleep(1.0)
        finally:
            await consumer.stop()

    async def _durable(self, tp: TopicPartition, msgs: list[ConsumerRecord[bytes, bytes]]) -> int | None:
        """The offset to commit once the batch is durable, or None if part of it is not."""
        try:
            await self.handle(tp, msgs)
        except (TimeoutError, KafkaError, OSError, asyncpg.PostgresError) as exc:
            log.warning("batch %s@%d not durable, rewinding: %s", tp, msgs[0].offset, exc)
            return None
        return int(msgs[-1].offset) + 1

    async def handle(self, tp: TopicPartition, msgs: list[ConsumerRecord[bytes, bytes]]) -> None:
        valid: list[dict[str, Any]] = []
        letters: list[Letter] = []
        for m in msgs:
            raw = m.value or b""
            rid = (m.key or b"").decode(errors="replace") or f"{tp.partition}:{m.offset}"
            try:
                valid.append(schema.validate(schema.parse(raw), self.accept))
            except schema.Invalid as exc:
                letters.append(Letter(rid, exc.kind, f"invalid:{exc.kind}: {exc.detail}"[:300], raw.decode(errors="replace")))
        if valid:
            try:
                rejected = await self._store(valid)
            except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
                letters.extend(Letter(v["id"], "storage_unavailable", f"storage_unavailable: {type(exc).__name__}",
                                      _dump(v)) for v in valid)
            else:
                letters.extend(rejected)
                bad = {x.id for x in rejected}
                self.stats["stored"] += len(valid) - len(bad)
                self.metrics.processed.labels("stored").inc(len(valid) - len(bad))
            await self._cache(valid)
        if letters:
            await self._dead_letter(letters)
        await self._archive(tp, msgs)
        self.stats["batches"] += 1
        self.stats["last_progress"] = time.time()

    async def _store(self, valid: list[dict[str, Any]]) -> list[Letter]:
        columns = [list(c) for c in zip(*(_row(v) for v in valid), strict=True)]

        async def batch(conn: asyncpg.Connection) -> None:
            await conn.execute(INSERT_EVENTS, *columns)  # one statement: one transaction
        try:
            await self._pg(batch)
            return []
        except _REFUSED:
            pass
        # a row is wrong (PostgreSQL refuses it): store the rest one by one
        rejected: list[Letter] = []
        for v in valid:
            async def one(conn: asyncpg.Connection, v: dict[str, Any] = v) -> None:
                await conn.execute(INSERT_EVENT, *_row(v))
            try:
                await self._pg(one)
            except _REFUSED as exc:
                rejected.append(Letter(v["id"], "store_rejected",
                                       f"invalid:store_rejected: {exc.sqlstate} {exc}"[:300], _dump(v)))
        return rejected

    async def _cache(self, valid: list[dict[str, Any]]) -> None:
        async def put() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for v in valid:
                pipe.set(f"event:{v['id']}", _dump(v), ex=3600)
            await asyncio.wait_for(pipe.execute(), 1.0)
        try:
            await self.redis_breaker.call(put)
        except Exception as exc:  # the cache is best effort: never stalls the partition
            log.debug("cache: %s", exc)

    async def _dead_letter(self, letters: list[Letter]) -> None:
        assert self.dlq is not None
        futs = []
        for x in letters:
            body = json.dumps({"id": x.id, "kind": x.kind, "reason": x.reason, "raw": x.raw[:8192]}).encode()
            futs.append(await self.dlq.send(DLQ, body, key=x.id.encode()))
        await asyncio.wait_for(asyncio.gather(*futs), 10.0)
        for x in letters:
            self.metrics.dlq.labels(x.kind).inc()
            self.metrics.processed.labels("dead_lettered").inc()
        self.stats["dead_lettered"] += len(letters)

    async def _archive(self, tp: TopicPartition, msgs: list[ConsumerRecord[bytes, bytes]]) -> None:
        if self.s3 is None:
            return
        key = f"archive/{tp.topic}/{tp.partition}/{msgs[0].offset:012d}-{msgs[-1].offset:012d}.jsonl"
        body = b"\n".join(m.value or b"" for m in msgs)

        def write() -> None:
            try:
                self.s3.put_object(Bucket=self.a.s3_bucket, Key=key, Body=body)
            except ClientError:
                # SeaweedFS answers AccessDenied, not NoSuchBucket, for a bucket that is not there yet
                try:
                    self.s3.create_bucket(Bucket=self.a.s3_bucket)
                except ClientError:
                    pass
                self.s3.put_object(Bucket=self.a.s3_bucket, Key=key, Body=body)

        async def put() -> None:
            await asyncio.wait_for(asyncio.to_thread(write), 3.0)
        try:
            await self.s3_breaker.call(put)
            self.metrics.archived.labels("ok").inc()
        except Exception as exc:  # the archive is a copy; PostgreSQL and the DLQ are the record
            self.metrics.archived.labels("failed").inc()
            log.debug("archive: %s", exc)

    # --- the dead-letter drain ---------------------------------------------------------
    async def redrive(self) -> None:
        consumer = await self._kafka_client(lambda: AIOKafkaConsumer(
            DLQ, bootstrap_servers=self.a.bootstrap, group_id="pipeline-redrive", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=500, session_timeout_ms=6000,
            heartbeat_interval_ms=1000))
        self.readers["redrive"] = consumer
        try:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                except KafkaError as exc:
                    log.warning("redrive poll: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                for tp, msgs in batches.items():
                    try:
                        await self._redrive(msgs)
                    except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
                        consumer.seek(tp, msgs[0].offset)
                        log.info("redrive waits for PostgreSQL: %s", type(exc).__name__)
                        await asyncio.sleep(1.0)
                        continue
                    self.done["redrive"][tp] = msgs[-1].offset + 1
                    try:
                        await consumer.commit({tp: msgs[-1].offset + 1})
                    except KafkaError as exc:
                        log.warning("redrive commit %s: %s", tp, exc)
        finally:
            await consumer.stop()

    async def _redrive(self, msgs: list[ConsumerRecord[bytes, bytes]]) -> None:
        events: list[dict[str, Any]] = []
        dead: list[tuple[Any, ...]] = []
        for m in msgs:
            letter = json.loads(m.value or b"{}")
            if letter.get("kind") == "storage_unavailable":
                try:
                    events.append(schema.validate(json.loads(letter["raw"]), self.accept))
                    continue
                except (schema.Invalid, ValueError):
                    letter["kind"] = "store_rejected"
            dead.append((str(letter.get("id")), str(letter.get("kind")), str(letter.get("reason")), letter.get("raw")))
        # events first (a row PostgreSQL refuses becomes a dead letter), then the dead letters: a
        # failure in between rewinds the batch, and the events already written are ignored then
        if events:
            dead += [(x.id, x.kind, x.reason, x.raw) for x in await self._store(events)]

        async def write(conn: asyncpg.Connection) -> None:
            await conn.executemany(INSERT_DEAD, dead)
        if dead:
            await self._pg(write)
        self.stats["redriven"] += len(msgs)

    # --- HTTP --------------------------------------------------------------------------
    async def _drained(self, loop: str) -> bool:
        reader = self.readers.get(loop)
        if reader is None:
            return False
        parts = reader.assignment()
        if not parts:
            return False
        ends = await reader.end_offsets(list(parts))
        for tp, end in ends.items():
            pos = self.done[loop].get(tp)
            if pos is None:  # nothing handled since we started: what the group committed before
                pos = await reader.committed(tp) or 0
            if pos < end:
                return False
        return True

    async def settled(self, request: web.Request) -> web.Response:
        """``GET /settled?prefix=P&wait=S``: once everything in the log when asked has been
        processed (stored or dead-lettered, and the dead letters drained), the ids with that
        prefix in ``events`` and in ``dead_letters``; 503 if not settled within ``wait`` s.
        The final read of the experiments: a plain SELECT right at the end of a run would
        miss the records acknowledged in its last second."""
        prefix = request.query.get("prefix", "")
        wait = min(float(request.query.get("wait", "10")), 60.0)
        deadline = time.monotonic() + wait
        try:
            while not (await self._drained("main") and await self._drained("redrive")):
                if time.monotonic() > deadline:
                    return web.json_response({"error": "not settled"}, status=503)
                await asyncio.sleep(0.2)

            async def read(conn: asyncpg.Connection) -> tuple[list[str], list[str]]:
                like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                ev = await conn.fetch("select id from events where id like $1", like)
                dl = await conn.fetch("select id from dead_letters where id like $1", like)
                return [r[0] for r in ev], [r[0] for r in dl]
            events, dead = await self._pg(read)
        except (*_UNAVAILABLE, KafkaError, asyncpg.PostgresError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=503)
        return web.json_response({"events": events, "dead_letters": dead})

    async def health(self, _request: web.Request) -> web.Response:
        breakers = {b.name: b.state.value for b in (self.pg_breaker, self.redis_breaker, self.s3_breaker)}
        status = "ok" if all(s == "closed" for s in breakers.values()) else "degraded"
        dead = [t for t in self.tasks if t.done()]
        if dead:
            status = "unhealthy"
        return web.json_response({"status": status, "breakers": breakers, **self.stats},
                                 status=503 if dead else 200)

    async def start(self, _app: web.Application) -> None:
        if self.a.s3_url:
            import boto3
            from botocore.config import Config

            self.s3 = boto3.client(
                "s3", endpoint_url=self.a.s3_url, aws_access_key_id="pipeline", aws_secret_access_key="pipeline",
                region_name="us-east-1",
                config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
        self.tasks = [asyncio.create_task(self.run(), name="main"), asyncio.create_task(self.redrive(), name="redrive")]
        for t in self.tasks:
            t.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A loop that ends on an error it does not handle takes the process with it: nothing would
        consume any more, and only an exit makes a restart policy act (Docker does not restart a
        container for being unhealthy). SIGTERM lets aiohttp close the Kafka and PostgreSQL clients
        first; main() then exits with EXIT_LOOP_DIED."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("loop %s died, exiting: %r", task.get_name(), exc, exc_info=exc)
        self.fatal = True
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self, _app: web.Application) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.dlq is not None:
            await self.dlq.stop()
        if self.pool is not None:
            await self.pool.close()
        await self.redis.aclose()




def _dump(v: dict[str, Any]) -> str:
    return json.dumps({**v, "amount": None if v["amount"] is None else str(v["amount"])})


def build(c: Consumer) -> web.Application:
    app = web.Application()
    app.router.add_get("/health", c.health)
    app.router.add_get("/settled", c.settled)
    app.router.add_get("/metrics", c.metrics.handler)
    app.on_startup.append(c.start)
    app.on_cleanup.append(c.stop)
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chaoslab_pipeline.consumer")
    ap.add_argument("--port", type=int, default=8082)
    ap.add_argument("--host", default="127.0.0.1", help="listen address (a container's own: 0.0.0.0)")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--pg-dsn", required=True)
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--s3-url", default="", help="S3 endpoint for the batch archive (empty: no archive)")
    ap.add_argument("--s3-bucket", default="pipeline-archive")
    ap.add_argument("--bug-accept", action="append", choices=[k for k in schema.KINDS if k not in ("invalid_json", "oversize")],
                    help="PLANTED BUG for the poison experiments: store records with this defect as valid "
                         "(also PIPELINE_BUG_ACCEPT=kind[,kind], so a stack file can switch it)")
    a = ap.parse_args(argv)
    env_bug = [k for k in os.environ.get("PIPELINE_BUG_ACCEPT", "").split(",") if k]
    unknown = [k for k in env_bug if k not in schema.KINDS]
    if unknown:
        ap.error(f"PIPELINE_BUG_ACCEPT: unknown kind {unknown[0]!r}")
    a.bug_accept = (a.bug_accept or []) + env_bug
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.bug_accept:
        log.warning("planted bug: records with %s are stored as valid", ", ".join(a.bug_accept))
    consumer = Consumer(a)
    web.run_app(build(consumer), host=a.host, port=a.port, print=None, access_log=None, shutdown_timeout=5)
    return EXIT_LOOP_DIED if consumer.fatal else 0


if __name__ == "__main__":
    sys.exit(main())
