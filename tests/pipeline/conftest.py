"""Fixtures of the pipeline tests: the stack up once for tests/pipeline, and seed 001's
fixtures (``chaos_kafka_failure``, ``chaos_minio_failure``, ``chaos_kafka_latency``...) built on
the chaoslab plugin's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pipeline_stack import Pipeline, pipeline_stack


@pytest.fixture(scope="package")
def chaos_stack() -> Iterator[Pipeline]:
    """The pipeline, up for tests/pipeline (the chaoslab plugin resolves service names in it)."""
    with pipeline_stack() as p:
        yield p


# -- seed 001's fixtures, on the plugin's ----------------------------------------------------


@pytest.fixture
def chaos_kafka_failure(service_failure: Any) -> Callable[..., Any]:
    """``chaos_kafka_failure(duration_seconds=5, mode="pause"|"stop")``: the broker frozen, or
    terminated (the stack restarts it, from its state in S3)."""

    def make(duration_seconds: float = 5, mode: str = "pause") -> Any:
        return service_failure(
            "broker", mode={"pause": "pause", "stop": "terminate"}[mode], duration=duration_seconds
        )

    return make


@pytest.fixture
def chaos_minio_failure(service_failure: Any) -> Callable[..., Any]:
    """``chaos_minio_failure(duration_seconds=5, mode="pause"|"stop")``: the S3 store (SeaweedFS)."""

    def make(duration_seconds: float = 5, mode: str = "pause") -> Any:
        return service_failure(
            "s3", mode={"pause": "pause", "stop": "terminate"}[mode], duration=duration_seconds
        )

    return make


@pytest.fixture
def chaos_network_partition(chaos: Any, chaos_stack: Pipeline) -> Callable[..., Any]:
    """``chaos_network_partition(duration_seconds=10, link="kafka")``: a proxied link taken down
    (the clients' connections cut, new ones refused)."""

    def make(duration_seconds: float = 10, link: str = "kafka") -> Any:
        return chaos(
            "network.down", {"proxy": link, "api": chaos_stack.proxy_api}, duration=duration_seconds
        )

    return make


@pytest.fixture
def chaos_kafka_latency(inject_latency: Any, chaos_stack: Pipeline) -> Callable[..., Any]:
    """``chaos_kafka_latency(latency_ms=100, jitter_ms=20)`` on every Kafka connection."""

    def make(
        latency_ms: float = 100, jitter_ms: float = 0, duration_seconds: float | None = None
    ) -> Any:
        return inject_latency(
            "kafka", latency_ms, jitter_ms, api=chaos_stack.proxy_api, duration=duration_seconds
        )

    return make


@pytest.fixture
def chaos_kafka_resource_limit(resource_limit: Any) -> Callable[..., Any]:
    """``chaos_kafka_resource_limit(cpu_quota=50000, mem_limit="512m")``: cgroup limits on the broker
    (cpu_quota in microseconds per 100 ms, as docker's)."""

    def make(cpu_quota: int | None = None, mem_limit: str | None = None) -> Any:
        mem = None if mem_limit is None else mem_limit.upper().rstrip("B") + "B"
        cpu = None if cpu_quota is None else cpu_quota / 100_000
        return resource_limit("broker", cpu=cpu, memory=mem)

    return make
