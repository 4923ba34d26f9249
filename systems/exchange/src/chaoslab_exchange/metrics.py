"""Prometheus metrics of the trading API, named as in the seeds so their PromQL works:
``rate(orders_total[1m])``, ``orders_total{status="FAILED"}``,
``order_processing_duration_seconds_bucket``, ``database_connections_active``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chaoslab_exchange.breaker import BreakerState

BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.orders = Counter(
            "orders_total",
            "Orders by outcome: the order status, FAILED (503) or REJECTED (429).",
            ["status"], registry=r,
        )
        self.durability = Counter(
            "orders_acknowledged_total",
            "Acknowledged orders by durability: committed or accepted_queued.",
            ["durability"], registry=r,
        )
        self.duration = Histogram(
            "order_processing_duration_seconds",
            "Time from request to acknowledgement of POST /orders.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.db_connections = Gauge(
            "database_connections_active", "PostgreSQL connections in use.", registry=r
        )
        self.cache_hits = Counter("cache_hits_total", "Redis order cache hits.", registry=r)
        self.cache_misses = Counter(
            "cache_misses_total", "Redis order cache misses, including Redis down.", registry=r
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 open, 2 half-open.",
            ["dependency"], registry=r,
        )
        self.breaker_opened = Gauge(
            "circuit_breaker_opened", "Times the breaker has opened.", ["dependency"], registry=r
        )
        self.dependency_up = Gauge(
            "dependency_up", "1 when the last health ping succeeded.", ["dependency"], registry=r
        )
        self.spool_depth = Gauge(
            "spool_depth", "Acknowledged orders waiting in the local spool.", registry=r
        )
        self.spooled = Counter("orders_spooled_total", "Orders written to the spool.", registry=r)
        self.replayed = Counter(
            "orders_replayed_total", "Spooled orders replayed into PostgreSQL.", registry=r
        )
        self.events_dropped = Counter(
            "events_dropped_total", "Redis events dropped because the buffer was full.", registry=r
        )
        self.events_buffered = Gauge(
            "events_buffered", "Redis events waiting to be published.", registry=r
        )
        self.inflight = Gauge("orders_inflight", "POST /orders requests in flight.", registry=r)
