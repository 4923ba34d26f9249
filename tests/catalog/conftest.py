"""The exchange stack for the catalog tests: reused when it is already up, else brought up and
taken down again. Its ports are fixed (examples/exchange/stack.yaml), so only one exchange can run
on a machine; a port held by something else skips the tests rather than fight over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT, port_taken

from chaoslab.stack import Stack

STACK_FILE = ROOT / "examples" / "exchange" / "stack.yaml"
EXPERIMENTS = ROOT / "examples" / "exchange" / "experiments"
PORTS = (8000, 8080, 8081, 8082, 8474, 5433, 6380, 15433, 16380, 9090, 9464)


@pytest.fixture(scope="module")
def exchange() -> Iterator[Path]:
    stack = Stack.load(STACK_FILE)
    was_up = stack.is_up()
    if not was_up:
        busy = [p for p in PORTS if port_taken(p)]
        if busy:
            pytest.skip(f"the exchange's fixed ports {busy} are held by something else")
        stack.up()
    try:
        yield STACK_FILE
    finally:
        if not was_up:
            stack.down()
