"""Toxic registry: each toxic module registers its class under its Toxiproxy type name."""

from __future__ import annotations

from typing import TypeVar

from .base import Toxic

_REGISTRY: dict[str, type[Toxic]] = {}
T = TypeVar("T", bound=type[Toxic])


def register(cls: T) -> T:
    if cls.type in _REGISTRY and _REGISTRY[cls.type] is not cls:
        raise RuntimeError(f"toxic {cls.type!r} registered twice")
    _REGISTRY[cls.type] = cls
    return cls


def get(type_name: str) -> type[Toxic] | None:
    return _REGISTRY.get(type_name)


def names() -> list[str]:
    return sorted(_REGISTRY)
