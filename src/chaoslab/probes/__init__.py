"""Probe registry: kind name -> class. One module per kind; modules load on first use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ..registry import Registry
from .base import Probe, ProbeContext, Sample

# Named lazily: a probe kind's module (httpx, asyncio subprocesses...) loads on first use.
KINDS: Registry[type[Probe]] = Registry("probe kind")
KINDS.lazy("http", "chaoslab.probes.http:HttpProbe")
KINDS.lazy("tcp", "chaoslab.probes.tcp:TcpProbe")
KINDS.lazy("process", "chaoslab.probes.process:ProcessProbe")
KINDS.lazy("command", "chaoslab.probes.command:CommandProbe")
KINDS.lazy("python", "chaoslab.probes.python:PythonProbe")
KINDS.lazy("prometheus", "chaoslab.probes.prometheus:PrometheusProbe")
KINDS.lazy("container", "chaoslab.probes.container:ContainerProbe")
KINDS.lazy("pods", "chaoslab.probes.pods:PodsProbe")


def probe_class(kind: str) -> type[Probe]:
    return KINDS.get(kind)


def build(name: str, spec: Any, context: ProbeContext) -> Probe:
    """A probe instance from a validated ``ProbeSpec``."""
    cls = probe_class(spec.kind)
    expect = cls.Expect.model_validate(spec.expect)
    return cls(name, getattr(spec, spec.kind), expect, spec.timeout, context)


def validate_expect(kind: str, expect: dict[str, Any]) -> tuple[type[BaseModel], ValidationError | None]:
    cls = probe_class(kind)
    try:
        cls.Expect.model_validate(expect)
        return cls.Expect, None
    except ValidationError as exc:
        return cls.Expect, exc


__all__ = ["KINDS", "Probe", "ProbeContext", "Sample", "build", "probe_class", "validate_expect"]
