"""Helpers for the runner-level recover tests: ``chaoslab`` as a child process with a private
state directory (tests/conftest.py's ``chaoslab_argv`` and ``child_env``), needing root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import chaoslab_argv, child_env

HERE = Path(__file__).parent
__all__ = ["chaoslab_argv", "child_env"]


NOT_ROOT = {"test_runner.py"}
"""Modules of this folder that need no root (it pauses and kills its own children)."""


def _needs_root(path: Path) -> bool:
    return HERE in path.parents and path.name not in NOT_ROOT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_root(Path(str(item.fspath))):
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _need_root(request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0 and _needs_root(Path(str(request.node.fspath))):
        pytest.skip("hogs in cgroups and kill tests need root")
