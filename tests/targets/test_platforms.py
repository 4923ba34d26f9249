"""Platforms behind one interface: a fault asks its target (and the target's platform) for what
it needs, never the target's kind; the kinds a fault accepts follow from the abilities it needs;
a resolved target stays plain data and finds its platform again by name after the ledger."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import chaoslab
from chaoslab import faults
from chaoslab.platforms import local
from chaoslab.runner.platform_events import start_recorders
from chaoslab.targets import KINDS, ResolvedTarget, TargetKind, TargetSpec, resolve
from chaoslab.targets.base import CGROUPS, PROCESSES

SRC = Path(chaoslab.__file__).resolve().parent


@pytest.fixture
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_target_reloaded_from_the_ledger_finds_its_platform_by_name(sleeper: int) -> None:
    target = resolve("sleeper", TargetSpec(pid=sleeper))
    stored = json.loads(json.dumps(target.to_dict()))  # what the ledger writes and recover reads
    assert "platform" not in stored
    again = ResolvedTarget.from_dict(stored)
    assert again.platform is local.PLATFORM
    assert again.describe() == target.describe() == f"sleeper (pid {sleeper})"
    assert again.can(PROCESSES) and not again.can("containers")


def test_the_kinds_a_fault_accepts_are_those_whose_abilities_cover_its_needs() -> None:
    accepted = {name: cls.target_kinds for name, cls in faults.all_faults().items()}
    assert accepted["network.bandwidth.tc"] == {"host", "container", "compose"}
    assert accepted["network.partition"] == {"address", "host", "service", "container", "compose"}
    assert accepted["cpu.throttle"] == {"pid", "process", "service", "cgroup", "container", "compose", "pod"}
    assert accepted["process.kill"] == {"pid", "process", "service", "container", "compose", "pod"}
    assert accepted["container.pause"] == {"container", "compose", "pod"}
    assert accepted["clock.skew"] == {"pid", "process", "service", "container", "compose"}
    assert accepted["process.rlimit"] == {"pid", "process", "service"}
    assert accepted["disk.fill"] == {"path", "container", "compose"}
    assert accepted["pod.delete"] == {"pod"}
    assert accepted["command.run"] is None


def test_a_new_platform_kind_is_accepted_by_every_fault_its_abilities_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS._items, "jail", TargetKind("jail", "freebsd", frozenset({PROCESSES, CGROUPS})))
    assert "jail" in faults.get("process.kill").target_kinds  # type: ignore[operator]
    assert "jail" in faults.get("memory.limit").target_kinds  # type: ignore[operator]
    assert "jail" not in faults.get("network.partition").target_kinds  # type: ignore[operator]
    assert "jail" not in faults.get("container.stop").target_kinds  # type: ignore[operator]


def test_no_fault_tests_a_target_kind() -> None:
    # nor lists kinds: it declares the abilities it needs (``needs``), the kinds follow
    kind_test = re.compile(r"target\.kind\b|_KINDS\b|^\s*target_kinds\s*=(?! AcceptedKinds)")
    found = [f"{f.name}:{n}: {line.strip()}" for f in sorted((SRC / "faults").glob("*.py"))
             for n, line in enumerate(f.read_text().splitlines(), 1) if kind_test.search(line)]
    assert found == []


def test_the_runner_knows_no_platform_by_name(sleeper: int) -> None:
    for f in (SRC / "runner").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("platforms"), f"{f.name} imports {node.module}"
    errors: list[str] = []
    target = resolve("sleeper", TargetSpec(pid=sleeper))
    # a local process: no platform has events to record for it (nothing asks Docker)
    assert start_recorders([target], 0.0, lambda what, exc: errors.append(what)) == []
    assert errors == []
