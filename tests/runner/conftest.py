"""Helpers for the runner-level recover tests: ``chaoslab`` as a child process with a private
state directory, running the chaoslab this test process imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import chaoslab

PY = sys.executable
HERE = Path(__file__).parent
SRC = Path(chaoslab.__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("hogs in cgroups and kill tests need root")


def chaoslab_argv(*args: str) -> list[str]:
    return [PY, "-m", "chaoslab", *args]


def child_env(state: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "CHAOSLAB_STATE_DIR": str(state),
            "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}
