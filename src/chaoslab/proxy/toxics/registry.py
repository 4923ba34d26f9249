"""Toxic registry: each toxic module registers its class under its Toxiproxy type name."""

from __future__ import annotations

from typing import TypeVar

from ...registry import Registry
from .base import Toxic

REGISTRY: Registry[type[Toxic]] = Registry("toxic")
T = TypeVar("T", bound=type[Toxic])


def register(cls: T) -> T:
    REGISTRY.add(cls.type, cls)
    return cls


def get(type_name: str) -> type[Toxic] | None:
    return REGISTRY.find(type_name)


def names() -> list[str]:
    return REGISTRY.names()
