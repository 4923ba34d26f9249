"""Toxic registry: each toxic module registers its class under its Toxiproxy type name."""

from __future__ import annotations

from typing import Any, TypeVar

from ...registry import Registry
from .base import Toxic

REGISTRY: Registry[type[Toxic[Any]]] = Registry("toxic")
T = TypeVar("T", bound=type[Toxic[Any]])


def register(cls: T) -> T:
    REGISTRY.add(cls.type, cls)
    return cls


def get(type_name: str) -> type[Toxic[Any]] | None:
    return REGISTRY.find(type_name)


def names() -> list[str]:
    return REGISTRY.names()
