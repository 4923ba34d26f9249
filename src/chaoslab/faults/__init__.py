"""Fault registry: each family module registers its classes with ``@register``.

Every module of this package is a family and is found by listing the package, as the proxy's
toxics are: adding a fault touches one file (its family module, or a new module for a new
family) and nothing lists them. Helpers shared by several families start with ``_``;
``base`` and ``settings`` register nothing. Families are imported on the first look-up, so
``chaoslab --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

from ..registry import Registry, unknown_message
from .base import Fault, FaultParams, NoParams


def families() -> list[str]:
    """The family modules of this package (every module whose name does not start with ``_``)."""
    return [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]


def _load_families(skip_broken: bool = False) -> None:
    for module in families():
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


__all__ = ["REGISTRY", "Fault", "FaultParams", "NoParams", "all_faults", "families", "get", "register", "unknown_message"]
