"""Prometheus metrics under the seeds' names (seed 003): ``log_events_sent_success``,
``log_events_processed`` and ``resilience4j_circuitbreaker_state`` (one series per breaker
and state, 1 for the current state, as Resilience4j exports it), so its dashboards' PromQL
works unchanged."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from chaoslab_pipeline.breaker import BreakerState, CircuitBreaker


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.sent_success = Counter("log_events_sent_success", "Records the broker acknowledged (acks=all).", registry=r)
        self.sent_failure = Counter("log_events_sent_failure", "Records the producer could not hand to the broker.", ["reason"], registry=r)
        self.processed = Counter("log_events_processed", "Records the consumer finished: stored, or dead-lettered.", ["outcome"], registry=r)
        self.rejected = Counter("log_events_rejected", "Records refused at the gateway.", ["reason"], registry=r)
        self.dlq = Counter("log_events_dead_lettered", "Records sent to the dead-letter topic.", ["reason"], registry=r)
        self.archived = Counter("log_batches_archived", "Batches written to the S3 archive.", ["outcome"], registry=r)
        self.breaker = Gauge(
            "resilience4j_circuitbreaker_state", "1 for the breaker's current state.", ["name", "state"], registry=r
        )
        self.inflight = Gauge("log_events_inflight", "Records in the producer's bounded buffer.", registry=r)
        self._breakers: list[CircuitBreaker] = []

    def watch(self, breaker: CircuitBreaker) -> None:
        self._breakers.append(breaker)

    def render(self) -> bytes:
        for b in self._breakers:
            current = b.state
            for s in BreakerState:
                self.breaker.labels(b.name, s.value).set(1 if s is current else 0)
        return generate_latest(self.registry)

    async def handler(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
