"""``python -m chaoslab_pipeline.gateway --port N --producer-url http://127.0.0.1:P``: HTTP ingest.

POST /logs takes one JSON record. The gateway checks the envelope (size, JSON object, the
end-to-end ``id``: the client's, or one it assigns) and forwards it to the producer behind a
breaker; 201 ``{"id": ...}`` means the broker holds the record (see docs/pipeline.md). With
``--validate full`` it also checks the record's schema and refuses defects at the edge;
the default leaves that to the consumer, whose dead-letter topic is what the poison
experiments exercise. Answers: 201, 400/413 (malformed: never retried), 429 with
Retry-After (the producer's buffer is full), 503 with Retry-After (producer or broker
unavailable; fails fast while the breaker is open).

POST /logs/batch takes a JSON array of records (at most BATCH_MAX records) and answers 200 with
one result per record, in order: ``{"results": [{"id", "status", ...}]}``, each ``status`` what
POST /logs would have answered for that record alone. The producer sends the whole batch with
many records in flight at once: one request, one hop and one wait for the broker per batch, not
per record (docs/pipeline.md, Performance).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from chaoslab_pipeline import schema
from chaoslab_pipeline.breaker import CircuitBreaker
from chaoslab_pipeline.metrics import Metrics

log = logging.getLogger("chaoslab_pipeline.gateway")
BATCH_MAX = 1000
BATCH_BYTES = 16 * 1024 * 1024


class Gateway:
    def __init__(self, producer_url: str, validate: str, timeout: float) -> None:
        self.producer_url = producer_url.rstrip("/") + "/produce"
        self.full = validate == "full"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.breaker = CircuitBreaker("producer", failure_threshold=3, reset_timeout=2.0)
        self.metrics = Metrics()
        self.metrics.watch(self.breaker)
        self.session: aiohttp.ClientSession | None = None

    def _refuse(self, status: int, kind: str, detail: str) -> web.Response:
        self.metrics.rejected.labels(kind).inc()
        return web.json_response({"error": kind, "detail": detail}, status=status)

    def _envelope(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The record with its end-to-end id (the client's, or a new one), or Invalid."""
        if "id" not in rec:
            rec["id"] = str(uuid.uuid4())
        elif not isinstance(rec["id"], str) or not rec["id"]:
            raise schema.Invalid("wrong_type", "id must be a non-empty string")
        if self.full:
            schema.validate(rec)
        return rec

    async def ingest(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "oversize", f"more than {schema.MAX_BYTES} bytes")
        try:
            rec = self._envelope(schema.parse(raw))
        except schema.Invalid as exc:
            return self._refuse(413 if exc.kind == "oversize" else 400, exc.kind, exc.detail)
        if not self.breaker.allow():
            return web.json_response(
                {"error": "producer_unavailable", "id": rec["id"]}, status=503, headers={"Retry-After": "2"}
            )
        assert self.session is not None
        body = json.dumps(rec, separators=(",", ":")).encode()
        try:
            async with self.session.post(self.producer_url, data=body) as resp:
                answer = await resp.read()
                status, retry = resp.status, resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.breaker.record_failure()
            # 502/504: the record may have reached the broker; the client cannot know
            code = 504 if isinstance(exc, TimeoutError) else 502
            return web.json_response({"error": "producer_unreachable", "id": rec["id"]}, status=code)
        self.breaker.record_success()
        headers = {"Retry-After": retry} if retry else None
        return web.Response(body=answer, status=status, content_type="application/json", headers=headers)

    async def ingest_batch(self, request: web.Request) -> web.Response:
        try:
            items = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "oversize", f"a batch of more than {BATCH_BYTES} bytes")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return self._refuse(400, "invalid_json", str(exc))
        if not isinstance(items, list) or not 0 < len(items) <= BATCH_MAX:
            return self._refuse(400, "wrong_type", f"a batch is a JSON array of 1 to {BATCH_MAX} records")
        results: list[dict[str, Any]] = []
        send: list[tuple[int, dict[str, Any]]] = []  # (position in results, record)
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise schema.Invalid("wrong_type", "the record is not a JSON object")
                body = json.dumps(item, separators=(",", ":")).encode()
                if len(body) > schema.MAX_BYTES:
                    raise schema.Invalid("oversize", f"{len(body)} bytes > {schema.MAX_BYTES}")
                send.append((len(results), self._envelope(item)))
                results.append({})
            except schema.Invalid as exc:
                self.metrics.rejected.labels(exc.kind).inc()
                rid = item.get("id") if isinstance(item, dict) else None
                results.append({"id": rid, "status": 413 if exc.kind == "oversize" else 400,
                                "error": exc.kind, "detail": exc.detail})
        if send:
            if not self.breaker.allow():
                return web.json_response({"error": "producer_unavailable"}, status=503, headers={"Retry-After": "2"})
            assert self.session is not None
            body = json.dumps([r for _, r in send], separators=(",", ":")).encode()
            try:
                async with self.session.post(self.producer_url + "/batch", data=body) as resp:
                    answer = await resp.json(content_type=None)
                    status, retry = resp.status, resp.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                self.breaker.record_failure()
                # every record of the batch may or may not be in the log: the client cannot know
                code = 504 if isinstance(exc, TimeoutError) else 502
                return web.json_response({"error": "producer_unreachable"}, status=code)
            self.breaker.record_success()
            if status != 200:  # the whole batch refused (buffer full, broker unavailable)
                headers = {"Retry-After": retry} if retry else None
                return web.json_response(answer, status=status, headers=headers)
            for (i, _), res in zip(send, answer["results"], strict=True):
                results[i] = res
        return web.json_response({"results": results})

    async def health(self, _request: web.Request) -> web.Response:
        state = self.breaker.state
        return web.json_response({"status": "ok" if state == "closed" else "degraded", "producer_breaker": state})

    async def start(self, _app: web.Application) -> None:
        # one keep-alive pool to the producer: a connection per request would cost more than the hop
        self.session = aiohttp.ClientSession(timeout=self.timeout, connector=aiohttp.TCPConnector(limit=256))

    async def stop(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()


def build(gw: Gateway) -> web.Application:
    app = web.Application(client_max_size=BATCH_BYTES)  # /logs refuses more than schema.MAX_BYTES itself
    app.router.add_post("/logs", gw.ingest)
    app.router.add_post("/logs/batch", gw.ingest_batch)
    app.router.add_get("/health", gw.health)
    app.router.add_get("/metrics", gw.metrics.handler)
    app.on_startup.append(gw.start)
    app.on_cleanup.append(gw.stop)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chaoslab_pipeline.gateway")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1", help="listen address (a container's own: 0.0.0.0)")
    p.add_argument("--producer-url", default="http://127.0.0.1:8081")
    p.add_argument("--validate", choices=["envelope", "full"], default="envelope")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the producer")
    a = p.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    web.run_app(build(Gateway(a.producer_url, a.validate, a.timeout)), host=a.host, port=a.port,
                print=None, access_log=None, shutdown_timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
