"""A stand-in for the exchange's /metrics: orders_total and order_processing_duration_seconds
with the exchange's names, at a steady rate, so the seeds' PromQL has data.

    python metrics_app.py PORT [RATE]
"""

from __future__ import annotations

import random
import sys
import time

from prometheus_client import Counter, Histogram, start_http_server

port = int(sys.argv[1])
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
orders = Counter("orders_total", "Orders by outcome.", ["status"])
duration = Histogram(
    "order_processing_duration_seconds",
    "POST /orders latency.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
start_http_server(port, addr="127.0.0.1")
rng = random.Random(7)
while True:
    orders.labels("FILLED").inc()
    duration.observe(rng.uniform(0.005, 0.02))  # p95 lands in the (0.01, 0.025] bucket
    time.sleep(1.0 / rate)
