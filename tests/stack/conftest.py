"""Fixtures for the local stack tests: temp dirs the postgres user can reach, free ports,
an isolated stack registry, and stacks that are always brought down (and checked gone)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_helpers import StackFactory


@pytest.fixture(scope="module")
def module_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are mode 0700 and the postgres user must reach the data dir.
    d = Path(tempfile.mkdtemp(prefix="chaoslab-stacktest-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def isolated_registry(module_dir: Path) -> Iterator[None]:
    """Other engineers' stacks must not make 'the single running stack' ambiguous."""
    old = os.environ.get("CHAOSLAB_STACK_REGISTRY")
    os.environ["CHAOSLAB_STACK_REGISTRY"] = str(module_dir / "registry")
    yield
    if old is None:
        os.environ.pop("CHAOSLAB_STACK_REGISTRY", None)
    else:
        os.environ["CHAOSLAB_STACK_REGISTRY"] = old


@pytest.fixture
def stacks(module_dir: Path) -> Iterator[StackFactory]:
    factory = StackFactory(module_dir)
    yield factory
    factory.cleanup()
