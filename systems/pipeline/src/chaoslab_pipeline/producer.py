"""``python -m chaoslab_pipeline.producer --port N --bootstrap 127.0.0.1:9092``: records to the broker.

POST /produce takes a record with its ``id`` and answers 201 only once the broker
acknowledged it with acks=all. The buffer is bounded (``--max-inflight``): beyond it, 429
with Retry-After. A breaker guards the broker: while it is open, 503 at once.

Idempotence: Tansu 0.6.0 answers InitProducerId with error -1 (measured, on both the
memory and the S3 engine), so aiokafka's ``enable_idempotence`` cannot start. The record's
id is the Kafka key and the consumer stores by it (insert ... on conflict do nothing), so
a retried send is a duplicate in the log but once in the store: idempotent end to end.

POST /produce/batch takes a JSON array of records and hands them all to the Kafka client before
waiting for any: the client packs them into a few produce requests (per partition, up to
``max_batch_size``), so a batch costs about one broker round trip, not one per record. It answers
200 with one result per record (201 with partition and offset, or 504), or refuses the whole
batch (429 when it would overflow ``--max-inflight``, 503 while the breaker is open).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from chaoslab_pipeline.breaker import CircuitBreaker
from chaoslab_pipeline.metrics import Metrics

log = logging.getLogger("chaoslab_pipeline.producer")
TOPIC = "logs"


class Producer:
    def __init__(self, bootstrap: str, max_inflight: int, send_timeout: float) -> None:
        self.bootstrap = bootstrap
        self.max_inflight = max_inflight
        self.send_timeout = send_timeout
        self.inflight = 0
        self.breaker = CircuitBreaker("kafka", failure_threshold=5, reset_timeout=2.0)
        self.metrics = Metrics()
        self.metrics.watch(self.breaker)
        self.kafka: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None

    async def _connect(self) -> None:
        """Start the Kafka client, retrying: the broker may come up after us or be down."""
        while True:
            client = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=2,
                request_timeout_ms=int(self.send_timeout * 1000), retry_backoff_ms=100,
                max_batch_size=256 * 1024,
            )
            try:
                await client.start()
            except (KafkaError, OSError) as exc:
                log.warning("broker not reachable yet: %s", exc)
                await client.stop()
                await asyncio.sleep(1.0)
                continue
            self.kafka = client
            return

    async def produce(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            rid = str(json.loads(raw)["id"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return web.json_response({"error": "no id"}, status=400)
        if self.inflight >= self.max_inflight:
            self.metrics.sent_failure.labels("buffer_full").inc()
            return web.json_response({"error": "buffer_full", "id": rid}, status=429, headers={"Retry-After": "1"})
        if self.kafka is None or not self.breaker.allow():
            self.metrics.sent_failure.labels("breaker_open").inc()
            return web.json_response({"error": "broker_unavailable", "id": rid}, status=503, headers={"Retry-After": "2"})
        self.inflight += 1
        self.metrics.inflight.set(self.inflight)
        try:
            meta = await asyncio.wait_for(
                self.kafka.send_and_wait(TOPIC, raw, key=rid.encode()), self.send_timeout
            )
        except (TimeoutError, KafkaError, OSError) as exc:
            self.breaker.record_failure()
            self.metrics.sent_failure.labels(type(exc).__name__).inc()
            # 504: the broker may have appended it; the client cannot know (an indeterminate answer)
            return web.json_response({"error": "broker_timeout", "id": rid, "detail": str(exc)[:200]}, status=504)
        finally:
            self.inflight -= 1
            self.metrics.inflight.set(self.inflight)
        self.breaker.record_success()
        self.metrics.sent_success.inc()
        return web.json_response({"id": rid, "partition": meta.partition, "offset": meta.offset}, status=201)

    async def produce_batch(self, request: web.Request) -> web.Response:
        try:
            records = json.loads(await request.read())
            rids = [str(r["id"]) for r in records]
        except (ValueError, KeyError, TypeError, RecursionError):
            return web.json_response({"error": "a JSON array of records, each with an id"}, status=400)
        n = len(rids)
        if self.inflight + n > self.max_inflight:
            self.metrics.sent_failure.labels("buffer_full").inc(n)
            return web.json_response({"error": "buffer_full"}, status=429, headers={"Retry-After": "1"})
        if self.kafka is None or not self.breaker.allow():
            self.metrics.sent_failure.labels("breaker_open").inc(n)
            return web.json_response({"error": "broker_unavailable"}, status=503, headers={"Retry-After": "2"})
        kafka = self.kafka
        self.inflight += n
        self.metrics.inflight.set(self.inflight)

        async def send_all() -> list[Any]:
            # every record into the client's buffer first, then one wait for all acknowledgements
            futs = [await kafka.send(TOPIC, json.dumps(r, separators=(",", ":")).encode(), key=rid.encode())
                    for r, rid in zip(records, rids, strict=True)]
            return list(await asyncio.gather(*futs, return_exceptions=True))
        try:
            outcomes = await asyncio.wait_for(send_all(), self.send_timeout)
        except (TimeoutError, KafkaError, OSError) as exc:
            outcomes = [exc] * n
        finally:
            self.inflight -= n
            self.metrics.inflight.set(self.inflight)
        results: list[dict[str, Any]] = []
        failed = 0
        for rid, out in zip(rids, outcomes, strict=True):
            if isinstance(out, BaseException):
                failed += 1
                self.metrics.sent_failure.labels(type(out).__name__).inc()
                # 504: the broker may have appended it; the client cannot know (an indeterminate answer)
                results.append({"id": rid, "status": 504, "error": "broker_timeout", "detail": str(out)[:200]})
            else:
                results.append({"id": rid, "status": 201, "partition": out.partition, "offset": out.offset})
        if failed:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        self.metrics.sent_success.inc(n - failed)
        return web.json_response({"results": results})

    async def health(self, _request: web.Request) -> web.Response:
        state = self.breaker.state
        body = {"status": "ok" if self.kafka and state == "closed" else "degraded",
                "kafka_breaker": state, "connected": self.kafka is not None, "inflight": self.inflight}
        return web.json_response(body)

    async def start(self, _app: web.Application) -> None:
        self._connector = asyncio.create_task(self._connect())

    async def stop(self, _app: web.Application) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self.kafka is not None:
            await self.kafka.stop()


def build(p: Producer) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)  # a batch of up to 1,000 records of 16 KiB
    app.router.add_post("/produce", p.produce)
    app.router.add_post("/produce/batch", p.produce_batch)
    app.router.add_get("/health", p.health)
    app.router.add_get("/metrics", p.metrics.handler)
    app.on_startup.append(p.start)
    app.on_cleanup.append(p.stop)
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chaoslab_pipeline.producer")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--host", default="127.0.0.1", help="listen address (a container's own: 0.0.0.0)")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--max-inflight", type=int, default=10000, help="records in flight to the broker (a batch counts each)")
    ap.add_argument("--send-timeout", type=float, default=3.0)
    a = ap.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    web.run_app(build(Producer(a.bootstrap, a.max_inflight, a.send_timeout)), host=a.host, port=a.port,
                print=None, access_log=None, shutdown_timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
