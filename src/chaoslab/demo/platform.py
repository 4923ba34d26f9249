"""Where the demo's exchange runs: the one switch between local processes and Compose.

A platform brings the exchange up (unless it already was), says which variables the catalog's
experiments need to reach it, finds the trading API's process for the baseline profile, and
takes down only what it started.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import click

from ..errors import ChaoslabError

EXCHANGE = Path(__file__).resolve().parents[3] / "examples" / "exchange"
STACK_FILE = EXCHANGE / "stack.yaml"
COMPOSE_FILE = EXCHANGE / "compose.yaml"


class Platform(Protocol):
    name: str
    was_up: bool

    def up(self) -> None: ...

    def down(self) -> None: ...

    def api_pid(self) -> int: ...

    def variables(self) -> dict[str, str]:
        """Variables every experiment of the demo gets (targets, URLs of this platform)."""
        ...

    def describe(self) -> str: ...


class LocalPlatform:
    """The exchange as supervised local processes (examples/exchange/stack.yaml)."""

    name = "local processes"

    def __init__(self, runs_dir: Path) -> None:
        from ..stack import Stack

        if not STACK_FILE.exists():
            raise click.ClickException(f"the exchange example is not here ({STACK_FILE}); run the demo from a "
                                       "source checkout")
        # The stack's chaos exporter serves the demo's own runs to Prometheus.
        os.environ["EXCHANGE_RUNS_DIR"] = str(runs_dir.resolve())
        self.stack = Stack.load(STACK_FILE)
        self.was_up = self.stack.is_up()

    def up(self) -> None:
        try:
            self.stack.up()
        except ChaoslabError as exc:
            raise click.ClickException(str(exc)) from None

    def down(self) -> None:
        self.stack.down()

    def api_pid(self) -> int:
        pid = self.stack.resolve("trading-api").get("pid")
        if not pid:
            raise click.ClickException("the trading API has no running process")
        return int(pid)

    def variables(self) -> dict[str, str]:
        return {}

    def describe(self) -> str:
        return f"chaoslab stack down {STACK_FILE}"


def compose_platform(runs_dir: Path) -> Platform:
    """The Compose exchange: refused, with the reason, until examples/exchange/compose.yaml exists."""
    raise click.ClickException(
        f"--compose needs the Compose exchange ({COMPOSE_FILE}), which is not in this checkout yet; "
        "run the demo without --compose (local processes)")
