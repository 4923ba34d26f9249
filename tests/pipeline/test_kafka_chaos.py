"""Seed 001's Kafka chaos tests (and seed 003's producer kill), against the real pipeline,
written with the plugin's fixtures the way the seed writes them: ``-m chaos_kafka``."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pipeline_stack import Pipeline
from tests.conftest import run_until_steady

from chaoslab.testing.assertions import (
    assert_error_rate,
    assert_latency,
    assert_no_lost_writes,
    assert_recovers_within,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]
ACK = {"status": [201], "id": "$.id"}
BODY = {
    "id": "{{key}}",
    "source": "chaos",
    "level": "INFO",
    "message": "m {{seq}}",
    "amount": "1.5",
}


def start_load(p: Pipeline, chaos_load: Any, rate: int = 30) -> Any:
    return chaos_load(
        url=p.gateway + "/logs", method="POST", rate=rate, timeout=5, body=BODY, ack=ACK
    )


def placed(p: Pipeline, load: Any) -> list[str]:
    """Our own final read: what PostgreSQL holds for this load, stored or dead-lettered."""
    events, dead = p.settled(load.generator.run_token + "-")
    return events + dead


def fast_answers(url: str, n: int = 20) -> list[tuple[int, float]]:
    out = []
    with httpx.Client(timeout=5) as c:
        for i in range(n):
            t = time.perf_counter()
            r = c.post(url, json={**BODY, "id": f"probe-{time.time_ns()}-{i}"})
            out.append((r.status_code, time.perf_counter() - t))
    return out


@pytest.mark.chaos_kafka
def test_producer_survives_brief_kafka_outage(
    chaos_stack: Pipeline, chaos_load: Any, chaos_kafka_failure: Any
) -> None:
    load = start_load(chaos_stack, chaos_load)
    time.sleep(2)
    with chaos_kafka_failure(duration_seconds=3, mode="pause"):
        time.sleep(5)  # the broker thaws after 3 s; watch it catch up
    run_until_steady(load, within=15)
    load.stop()
    assert_error_rate(load.session, "baseline", 0.05)
    assert_recovers_within(load.session, 15)
    assert_no_lost_writes(load.session, placed(chaos_stack, load))


@pytest.mark.chaos_kafka
def test_broker_graceful_shutdown_reconnects_and_loses_nothing(
    chaos_stack: Pipeline, chaos_load: Any, chaos_kafka_failure: Any
) -> None:
    load = start_load(chaos_stack, chaos_load)
    time.sleep(2)
    with chaos_kafka_failure(duration_seconds=4, mode="stop"):
        time.sleep(4)
    run_until_steady(load, within=20)
    load.stop()
    assert_recovers_within(load.session, 20)
    # acknowledged before the stop: reloaded from S3 by the restarted broker, then stored
    assert_no_lost_writes(load.session, placed(chaos_stack, load))


@pytest.mark.chaos_kafka
def test_partition_trips_the_breaker_and_fails_fast(
    chaos_stack: Pipeline, chaos_load: Any, chaos_network_partition: Any
) -> None:
    load = start_load(chaos_stack, chaos_load)
    time.sleep(2)
    with chaos_network_partition(duration_seconds=6, link="kafka"):
        time.sleep(4)  # the producer's sends time out (3 s) and its breaker opens
        answers = fast_answers(chaos_stack.gateway + "/logs")
        producer = chaos_stack.health("producer")
    run_until_steady(load, within=20)
    load.stop()
    assert producer["kafka_breaker"] in ("open", "half_open"), producer
    fast = sorted(t for s, t in answers if s == 503)
    assert len(fast) >= 15, answers  # a half-open trial may wait for its timeout
    assert fast[len(fast) // 2] < 0.05, (
        fast
    )  # fail fast: no wait on the broker (seed: < 10 ms; generous here)
    assert_recovers_within(load.session, 20)
    assert_no_lost_writes(load.session, placed(chaos_stack, load))


@pytest.mark.chaos_kafka
def test_latency_with_jitter_keeps_p95_under_2s(
    chaos_stack: Pipeline, chaos_load: Any, chaos_kafka_latency: Any
) -> None:
    load = start_load(chaos_stack, chaos_load)
    time.sleep(2)
    with chaos_kafka_latency(latency_ms=200, jitter_ms=50):
        time.sleep(5)
    time.sleep(2)
    load.stop()
    assert_error_rate(load.session, "fault", 0.02)
    assert_latency(load.session, "fault", 2.0)
    p50 = load.session.analysis["metrics"]["latency.p50.fault"]
    assert p50 > 0.1, p50  # the delay is really on the produce path
    assert_no_lost_writes(load.session, placed(chaos_stack, load))


@pytest.mark.chaos_kafka
def test_broker_under_resource_limits_keeps_up(
    chaos_stack: Pipeline, chaos_load: Any, chaos_kafka_resource_limit: Any
) -> None:
    load = start_load(chaos_stack, chaos_load)
    time.sleep(2)
    with chaos_kafka_resource_limit(cpu_quota=50000, mem_limit="512m"):
        time.sleep(4)
    load.stop()
    assert_error_rate(load.session, "fault", 0.02)
    assert_no_lost_writes(load.session, placed(chaos_stack, load))


@pytest.mark.chaos_kafka
def test_producer_kill_opens_the_gateway_breaker(
    chaos_stack: Pipeline, chaos_load: Any, service_failure: Any
) -> None:
    """Seed 003's experiment 1: breaker opens, requests fail fast, recovery within 30 s."""
    load = start_load(chaos_stack, chaos_load)
    time.sleep(2)
    with service_failure("producer", mode="kill", duration=3):
        answers = fast_answers(chaos_stack.gateway + "/logs", 10)
        time.sleep(3)
    run_until_steady(load, within=30)
    load.stop()
    fast = sorted(t for s, t in answers if s == 503)
    assert fast and fast[len(fast) // 2] < 0.05, answers
    assert_recovers_within(load.session, 30)
    assert_no_lost_writes(load.session, placed(chaos_stack, load))
