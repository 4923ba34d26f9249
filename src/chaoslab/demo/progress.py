"""The demo's own progress line: which step of how many, the demo's elapsed and remaining time.

The experiments' consoles show their own phase and clock; this adds where the whole demo stands,
at every step and phase change, and every few seconds while something long runs in between
(bringing the stack up, the baseline profile).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from ..records import Record


def mmss(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}"


@dataclass
class Step:
    title: str
    planned: float
    """Seconds this step is expected to take (its share of the remaining-time estimate)."""


@dataclass
class Progress:
    steps: list[Step]
    echo: Callable[[str], None] = click.echo
    started: float = field(default_factory=time.monotonic)
    index: int = -1
    step_started: float = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        if self.index < 0:
            return sum(s.planned for s in self.steps)
        current = self.steps[self.index]
        left = max(current.planned - (time.monotonic() - self.step_started), 0.0)
        return left + sum(s.planned for s in self.steps[self.index + 1:])

    def clock(self) -> str:
        return f"demo {mmss(self.elapsed())} elapsed, ~{mmss(self.remaining())} left"

    def begin(self, index: int) -> None:
        self.index, self.step_started = index, time.monotonic()
        step = self.steps[index]
        click.secho(f"\n== [{index + 1}/{len(self.steps)}] {step.title}   ({self.clock()})", bold=True)

    def say(self, text: str) -> None:
        self.echo(f"   {text}   ({self.clock()})")

    def on_record(self, record: Record) -> None:
        """A listener for an experiment's records: the demo's clock at each phase change."""
        if record["type"] == "phase" and record["name"] in ("baseline", "fault", "recovery", "verify"):
            self.say(f"{self.steps[self.index].title}: phase {record['name']}")

    @contextmanager
    def ticking(self, what: str, every: float = 5.0) -> Iterator[None]:
        """Say ``what`` is still going every ``every`` seconds until the block ends."""
        done = threading.Event()
        t0 = time.monotonic()

        def tick() -> None:
            while not done.wait(every):
                self.say(f"{what} ({time.monotonic() - t0:.0f} s)")

        thread = threading.Thread(target=tick, name="demo-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
