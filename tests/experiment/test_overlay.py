"""The targets overlay (--targets FILE): the catalog's own files against another platform."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, chaoslab_argv, child_env

from chaoslab.experiment.loader import load_experiment
from chaoslab.experiment.overlay import load_overlay
from chaoslab.runner.suite import load_suite

EXCHANGE = ROOT / "examples" / "exchange"
COMPOSE_TARGETS = EXCHANGE / "compose-targets.yaml"


def test_compose_overlay_swaps_targets_by_name_and_drops_the_stack() -> None:
    overlay = load_overlay(COMPOSE_TARGETS, {"EXCHANGE_PROJECT": "shop"})
    part = load_experiment(
        EXCHANGE / "experiments" / "02-network-partition.yaml", {}, overlay
    ).experiment
    assert part.stack is None
    assert part.targets["db"].kind == "compose"
    assert part.targets["db"].compose is not None and part.targets["db"].compose.project == "shop"
    assert part.targets["link"].kind == "proxy"  # not in the overlay: as the file says
    assert set(part.targets) == {"db", "link"}  # nothing added that the experiment does not name
    oom = load_experiment(
        EXCHANGE / "experiments" / "03-memory-oom-kill.yaml", {}, overlay
    ).experiment
    assert oom.targets["api"].kind == "compose" and oom.targets["api"].compose is not None
    assert oom.targets["api"].compose.service == "trading-api"
    plain = load_experiment(EXCHANGE / "experiments" / "02-network-partition.yaml").experiment
    assert plain.stack == "../stack.yaml" and plain.targets["db"].kind == "address"


def test_overlay_vars_are_defaults_under_the_callers(tmp_path: Path) -> None:
    f = tmp_path / "o.yaml"
    f.write_text("vars: {EXCHANGE_API_PORT: '18080', RATE: 7/s}\n")
    overlay = load_overlay(f)
    exp = load_experiment(
        EXCHANGE / "experiments" / "01-database-sudden-death.yaml", {"RATE": "9/s"}, overlay
    )
    assert exp.experiment.load is not None
    assert exp.experiment.load.http is not None
    assert exp.experiment.load.http.url == "http://127.0.0.1:18080/orders"
    assert exp.experiment.load.http.rate == 9.0
    assert (
        exp.experiment.stack == "../stack.yaml"
    )  # no `stack:` in the overlay: the experiment's own
    suite = load_suite(EXCHANGE / "suite.yaml", {}, overlay)
    assert suite.suite.ready is not None and suite.suite.ready.http is not None
    assert suite.suite.ready.http.url == "http://127.0.0.1:18080/health"


def _validate(
    tmp_path: Path, overlay: str, experiment: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    f = tmp_path / "overlay.yaml"
    f.write_text(overlay)
    proc = subprocess.run(
        chaoslab_argv("validate", "--targets", str(f), str(EXCHANGE / "experiments" / experiment)),
        capture_output=True,
        text=True,
        env=child_env(tmp_path / "state"),
        timeout=60,
    )
    return f, proc


def test_a_bad_overlay_is_one_line_per_error_exit_2(tmp_path: Path) -> None:
    f, proc = _validate(
        tmp_path,
        "stack: null\ntargets:\n  db: {compose: {project: x, servce: postgres}}\n",
        "01-database-sudden-death.yaml",
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{f}:3:"), proc.stderr
    assert "servce" in proc.stderr and "service" in proc.stderr


def test_a_fault_the_new_target_cannot_take_is_refused(tmp_path: Path) -> None:
    _, proc = _validate(
        tmp_path,
        "targets:\n  link: {compose: {project: x, service: toxi}}\n",
        "09-network-latency.yaml",
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "network.latency cannot act on a compose target" in proc.stderr, proc.stderr
