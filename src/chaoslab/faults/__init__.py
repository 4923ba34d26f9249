"""Fault registry: each family module registers its classes with ``@register``.

Adding a fault touches one file (its family module). Adding a family adds one line to
``FAMILIES``. Family modules are imported on first look-up, so ``chaoslab --help`` stays fast.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TypeVar

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

_REGISTRY: dict[str, type[Fault]] = {}
_loaded = False
F = TypeVar("F", bound=type[Fault])


def register(cls: F) -> F:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise RuntimeError(f"fault {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in FAMILIES:
            importlib.import_module(module)
        _loaded = True


def get(name: str) -> type[Fault]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(unknown_message("fault", name, list(_REGISTRY))) from None


def all_faults() -> dict[str, type[Fault]]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def unknown_message(kind: str, name: str, known: list[str]) -> str:
    hint = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    text = f"unknown {kind} {name!r}"
    return text + (f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(sorted(known))})")


__all__ = ["Fault", "FaultParams", "NoParams", "all_faults", "get", "register", "unknown_message"]
