"""Probe registry: kind name -> class. One module per kind, holding its spec, its expectations
and its sampler; every module of this package is a kind (helpers would start with ``_``) and is
found by listing the package on the first look-up, as the faults' families are."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..registry import Registry
from .base import Probe, ProbeContext, Sample


def _load_kinds() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


KINDS: Registry[type[Probe[Any, Any]]] = Registry("probe kind", loader=_load_kinds)
P = TypeVar("P", bound=type[Probe[Any, Any]])


def register(cls: P) -> P:
    KINDS.add(cls.kind, cls)
    return cls


def probe_class(kind: str) -> type[Probe[Any, Any]]:
    return KINDS.get(kind)


def build(name: str, spec: Any, context: ProbeContext) -> Probe[Any, Any]:
    """A probe instance from a validated ``ProbeSpec``."""
    cls = probe_class(spec.kind)
    expect = cls.Expect.model_validate(spec.expect)
    return cls(name, spec.spec, expect, spec.timeout, context)


def validate_expect(kind: str, expect: dict[str, Any]) -> tuple[type[BaseModel], ValidationError | None]:
    cls = probe_class(kind)
    try:
        cls.Expect.model_validate(expect)
        return cls.Expect, None
    except ValidationError as exc:
        return cls.Expect, exc


__all__ = ["KINDS", "Probe", "ProbeContext", "Sample", "build", "probe_class", "register", "validate_expect"]
