"""Fault registry: each family module registers its classes with ``@register``.

Adding a fault touches one file (its family module). Adding a family adds one line to
``FAMILIES``. Family modules are imported on first look-up, so ``chaoslab --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from ..registry import Registry, unknown_message
from .base import Fault, FaultParams, NoParams

FAMILIES = (
    "chaoslab.faults.process",
    "chaoslab.faults.proxy",
    "chaoslab.faults.netfilter",
    "chaoslab.faults.tc",
    "chaoslab.faults.cpu",
    "chaoslab.faults.memory",
    "chaoslab.faults.disk",
    "chaoslab.faults.limits",
    "chaoslab.faults.postgres",
    "chaoslab.faults.clock",
    "chaoslab.faults.actions",
    "chaoslab.faults.kubernetes",
    "chaoslab.faults.chaosmesh",
    "chaoslab.faults.container",
)


def _load_families(skip_broken: bool = False) -> None:
    for module in FAMILIES:
        try:
            importlib.import_module(module)
        except Exception:
            if not skip_broken:
                raise


REGISTRY: Registry[type[Fault[Any]]] = Registry("fault", loader=_load_families)
F = TypeVar("F", bound=type[Fault[Any]])


def register(cls: F) -> F:
    REGISTRY.add(cls.name, cls)
    return cls


def get(name: str) -> type[Fault[Any]]:
    return REGISTRY.get(name)


def all_faults(*, skip_broken: bool = False) -> dict[str, type[Fault[Any]]]:
    """Every fault by name; ``skip_broken`` lists the families that import (for the doctor)."""
    if skip_broken:
        _load_families(skip_broken=True)
    return REGISTRY.items()


__all__ = ["REGISTRY", "Fault", "FaultParams", "NoParams", "all_faults", "get", "register", "unknown_message"]
