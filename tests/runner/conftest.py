"""Helpers for the runner-level recover tests: ``chaoslab`` as a child process with a private
state directory (tests/conftest.py's ``chaoslab_argv`` and ``child_env``), needing root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import chaoslab_argv, child_env

HERE = Path(__file__).parent
__all__ = ["chaoslab_argv", "child_env"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("hogs in cgroups and kill tests need root")
