"""Local process stack: services in their own cgroups, restart policies and health checks.

Kept light on purpose (targets and the runner import it): everything loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Stack, events_between, resolve_service

__all__ = ["Stack", "events_between", "resolve_service"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'chaoslab.stack' has no attribute {name!r}")
