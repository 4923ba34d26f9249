"""Probe registry: kind name -> class. One module per kind; modules load on first use."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from .base import Probe, ProbeContext, Sample

KINDS = {
    "http": "chaoslab.probes.http:HttpProbe",
    "tcp": "chaoslab.probes.tcp:TcpProbe",
    "process": "chaoslab.probes.process:ProcessProbe",
    "command": "chaoslab.probes.command:CommandProbe",
    "python": "chaoslab.probes.python:PythonProbe",
    "prometheus": "chaoslab.probes.prometheus:PrometheusProbe",
    "container": "chaoslab.probes.container:ContainerProbe",
}


def probe_class(kind: str) -> type[Probe]:
    module, _, attr = KINDS[kind].partition(":")
    cls: type[Probe] = getattr(importlib.import_module(module), attr)
    return cls


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
