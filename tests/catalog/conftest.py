"""The exchange stack for the catalog tests: reused when it is already up, else brought up and
taken down again. Its ports are fixed (examples/exchange/stack.yaml), so only one exchange can run
on a machine; a port held by something else skips the tests rather than fight over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT, port_taken

from chaoslab.stack import Stack

STACK_FILE = ROOT / "examples" / "exchange" / "stack.yaml"
EXPERIMENTS = ROOT / "examples" / "exchange" / "experiments"
# stack.yaml's port variables and defaults: set them (and EXCHANGE_STACK_NAME) in the
# environment to run these tests beside another exchange; the experiments read the same.
PORT_VARS = {
    "EXCHANGE_NGINX_PORT": 8000, "EXCHANGE_API_PORT": 8080, "EXCHANGE_MARKET_PORT": 8081,
    "EXCHANGE_ORDERFLOW_PORT": 8082, "EXCHANGE_PROXY_API_PORT": 8474, "EXCHANGE_PG_PORT": 5433,
    "EXCHANGE_REDIS_PORT": 6380, "EXCHANGE_PG_PROXY_PORT": 15433,
    "EXCHANGE_REDIS_PROXY_PORT": 16380, "EXCHANGE_PROMETHEUS_PORT": 9090,
    "EXCHANGE_EXPORTER_PORT": 9464,
}
PORTS = tuple(int(os.environ.get(name, default)) for name, default in PORT_VARS.items())
PG_PORT = int(os.environ.get("EXCHANGE_PG_PORT", 5433))


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
