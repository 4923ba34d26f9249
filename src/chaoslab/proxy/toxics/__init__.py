"""Toxics: one module per toxic, registered by its Toxiproxy type name.

Every module of this package is imported here, so adding a toxic is adding its module: nothing
else lists them (the API, the OpenAPI document and the ``network.*`` faults read the registry).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Attributes, Emit, LinkControl, Toxic, ToxicContext
from .registry import get, names, register

_NOT_TOXICS = {"base", "registry"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_TOXICS and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Attributes", "Emit", "LinkControl", "Toxic", "ToxicContext", "get", "names", "register"]
