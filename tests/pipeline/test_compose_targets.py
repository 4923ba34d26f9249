"""examples/pipeline/compose-targets.yaml: every pipeline experiment validates against the Compose
project, its stack services become Compose services, and the rest of each file is untouched."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, chaoslab_argv, child_env

from chaoslab.experiment.loader import load_experiment
from chaoslab.experiment.overlay import load_overlay

PIPELINE = ROOT / "examples" / "pipeline"
OVERLAY = PIPELINE / "compose-targets.yaml"


def test_every_pipeline_experiment_validates_on_compose(tmp_path: Path) -> None:
    files = sorted(str(f) for f in (PIPELINE / "experiments").glob("*.yaml"))
    out = subprocess.run(
        chaoslab_argv("validate", "--targets", str(OVERLAY), *files),
        capture_output=True,
        text=True,
        env=child_env(tmp_path / "state"),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(": ok (") == len(files) == 11


def test_stack_services_become_compose_services() -> None:
    exp = PIPELINE / "experiments" / "10-broker-and-postgres-down.yaml"
    plain = load_experiment(exp)
    assert plain.stack_file() is not None and plain.experiment.targets["broker"].kind == "service"
    over = load_experiment(
        exp, {"PIPELINE_PROJECT": "shop"}, load_overlay(OVERLAY, {"PIPELINE_PROJECT": "shop"})
    )
    assert over.stack_file() is None
    broker = over.experiment.targets["broker"]
    assert broker.kind == "compose" and broker.compose is not None
    assert (broker.compose.project, broker.compose.service) == ("shop", "broker")
    # the proxy link keeps the experiment's own target; nothing the experiment lacks is added
    assert over.experiment.targets["pglink"] == plain.experiment.targets["pglink"]
    assert set(over.experiment.targets) == set(plain.experiment.targets)
    assert over.experiment.method == plain.experiment.method
