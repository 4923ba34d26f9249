"""One registry for everything chaoslab looks up by name: faults, toxics, probe kinds, stack
kinds, report formats, observers and the CLI's commands.

A leaf module (imports only the standard library) so every family can use it without cycles.
Entries may be registered eagerly (``add``) or named lazily as ``"module:attr"`` (``lazy``)
so that ``chaoslab --help`` does not import every family; a ``loader`` callable can also import
the modules that register themselves, on the first look-up.

The did-you-mean hint for a mistyped name is worded here, once, for every message that offers
one (the registries', the experiment loader's, the input errors of ``source``).
"""

from __future__ import annotations

import difflib
import importlib
import typing
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def suggest(name: str, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The closest known name to ``name``, or None when nothing is close enough."""
    hint = difflib.get_close_matches(name, sorted(known), n=1, cutoff=cutoff)
    return hint[0] if hint else None


def did_you_mean(name: str, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """``did you mean 'y'?`` for the closest known name, or None when nothing is close enough."""
    hint = suggest(name, known, cutoff=cutoff)
    return f"did you mean {hint!r}?" if hint else None


def unknown_message(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown fault 'x' (did you mean 'y'?)``, or the list of known names when none is close."""
    known = sorted(known)
    hint = did_you_mean(name, known, cutoff=0.5)
    return f"unknown {kind} {name!r} ({hint or 'known: ' + ', '.join(known)})"


def type_arguments(cls: type) -> tuple[Any, ...]:
    """The type arguments ``cls`` gives its generic base in its own class statement:
    ``class Kill(Fault[KillParams])`` -> ``(KillParams,)``.

    Empty when the statement names none, or only type variables (an intermediate generic
    class such as ``class CgroupFault(Fault[P])``): such a class inherits its base's models.
    Read from the class's own ``__orig_bases__``, never an inherited one.
    """
    for base in cls.__dict__.get("__orig_bases__", ()):
        args = typing.get_args(base)
        if args and not any(isinstance(a, TypeVar) for a in args):
            return args
    return ()


class Registry(Generic[T]):
    """Name -> T. ``get`` raises ``KeyError`` with a did-you-mean message for unknown names."""

    def __init__(self, kind: str, *, loader: Callable[[], object] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._order: dict[str, None] = {}
        self._summaries: dict[str, str] = {}
        self._loader = loader
        self._loaded = loader is None

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; registering another item under a taken name is a bug."""
        if name in self._items and self._items[name] is not item:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        self._order.setdefault(name)
        return item

    def lazy(self, name: str, path: str, summary: str = "") -> None:
        """Register ``module:attr``, imported on the first ``get(name)``; ``summary`` is a line
        about it that can be shown without importing it (``chaoslab --help``)."""
        self._lazy[name] = path
        self._order.setdefault(name)
        if summary:
            self._summaries[name] = summary

    def summary(self, name: str) -> str:
        return self._summaries.get(name, "")

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items and name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            self._items[name] = getattr(importlib.import_module(module), attr)
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(unknown_message(self.kind, name, self.names())) from None

    def find(self, name: str) -> T | None:
        """Like ``get`` but None for an unknown name."""
        return self.get(name) if name in self else None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items or name in self._lazy

    def names(self) -> list[str]:
        """Every name, sorted (the order of catalogs and of error messages)."""
        self._load()
        return sorted({*self._items, *self._lazy})

    def registered(self) -> list[str]:
        """Every name in the order it was registered, for lists whose order is chosen by hand
        (the report formats' files: Markdown first)."""
        self._load()
        return list(self._order)

    def items(self) -> dict[str, T]:
        """Every entry, by name (imports the lazy ones)."""
        return {name: self.get(name) for name in self.names()}
