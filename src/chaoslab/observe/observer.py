"""What an observer is (the exporter, the eBPF tracer, the profiler) and what it gets from the run.

Defined here, not in the runner, so ``observe`` does not import the runner that drives it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..journal import RunClock
    from ..targets import ResolvedTarget


@dataclass
class ObserverContext:
    """What an observer (exporter, eBPF tracer, profiler) gets from the run."""

    run_id: str
    run_dir: Path
    clock: RunClock
    experiment: Any
    targets: dict[str, ResolvedTarget]
    emit: Callable[..., None]


class Observer(Protocol):
    """Watches a run without influencing it: started before the baseline, stopped after the
    reverts (before analysis). It also receives every record if it has ``on_record``."""

    async def start(self, ctx: ObserverContext) -> None: ...

    async def stop(self) -> None: ...


__all__ = ["Observer", "ObserverContext"]
