"""``python -m pipeline.gateway --port N --producer-url http://127.0.0.1:P``: HTTP ingest.

POST /logs takes one JSON record. The gateway checks the envelope (size, JSON object, the
end-to-end ``id``: the client's, or one it assigns) and forwards it to the producer behind a
breaker; 201 ``{"id": ...}`` means the broker holds the record (see docs/pipeline.md). With
``--validate full`` it also checks the record's schema and refuses defects at the edge;
the default leaves that to the consumer, whose dead-letter topic is what the poison
experiments exercise. Answers: 201, 400/413 (malformed: never retried), 429 with
Retry-After (the producer's buffer is full), 503 with Retry-After (producer or broker
unavailable; fails fast while the breaker is open).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid

import aiohttp
from aiohttp import web

from pipeline import schema
from pipeline.breaker import CircuitBreaker
from pipeline.metrics import Metrics

log = logging.getLogger("pipeline.gateway")


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

    async def ingest(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "oversize", f"more than {schema.MAX_BYTES} bytes")
        try:
            rec = schema.parse(raw)
            if "id" not in rec:
                rec["id"] = str(uuid.uuid4())
            elif not isinstance(rec["id"], str) or not rec["id"]:
                raise schema.Invalid("wrong_type", "id must be a non-empty string")
            if self.full:
                schema.validate(rec)
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
    app = web.Application(client_max_size=schema.MAX_BYTES)
    app.router.add_post("/logs", gw.ingest)
    app.router.add_get("/health", gw.health)
    app.router.add_get("/metrics", gw.metrics.handler)
    app.on_startup.append(gw.start)
    app.on_cleanup.append(gw.stop)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pipeline.gateway")
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
