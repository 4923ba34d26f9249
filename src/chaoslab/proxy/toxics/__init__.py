"""Toxics: one module per toxic, registered by its Toxiproxy type name.

Adding a toxic is one module here and one name in the import line below.
"""

from __future__ import annotations

from . import bandwidth, latency, limit_data, reset_peer, slicer, slow_close, timeout
from .base import Attributes, Emit, LinkControl, Toxic, ToxicContext
from .registry import get, names, register

__all__ = [
    "Attributes",
    "Emit",
    "LinkControl",
    "Toxic",
    "ToxicContext",
    "bandwidth",
    "get",
    "latency",
    "limit_data",
    "names",
    "register",
    "reset_peer",
    "slicer",
    "slow_close",
    "timeout",
]
