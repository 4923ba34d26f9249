"""Injecting and reverting one fault under the ledger: the single place that orders the steps.

Used by the experiment runner and by programmatic sessions (the pytest plugin), so both are
crash-safe in the same way: the ledger entry exists before the system changes, and goes only
after the revert succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..faults import Fault
from .ledger import Ledger


def inject(fault: Fault[Any], ledger: Ledger, keep: Callable[[str | None], None]) -> None:
    """Record, then inject. ``keep`` receives the ledger entry (None for instant faults) before
    the system changes, so that a caller can revert even when ``inject`` raises halfway (a
    partial injection is undone like a full one: reverts are idempotent)."""
    entry = ledger.record(fault) if fault.reversible else None
    keep(entry)
    fault.inject()
    if entry is not None:
        ledger.update(entry, fault)


def revert(fault: Fault[Any], ledger: Ledger, entry: str | None) -> None:
    """Revert, then forget. A failing revert raises and leaves the entry for `chaoslab recover`."""
    if not fault.reversible:
        return
    fault.revert()
    if entry is not None:
        ledger.remove(entry)
