"""Seed 002's JSON suite format, copied unchanged from the seed, through `chaoslab suite`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from chaoslab.suite import load_suite

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "kubernetes" / "seed002-suite.json"
PY = sys.executable


def test_seed_example_loads_as_two_kubernetes_experiments() -> None:
    loaded = load_suite(EXAMPLE, {"NAMESPACE": "shop", "SELECTOR": "app=db"})
    assert loaded.suite.name == "Example Chaos Experiment Suite"
    (e1, x1), (e2, x2) = loaded.experiments
    assert e1.name == "Memory Exhaustion Test" and e2.name == "Network Partition Test"
    step1 = yaml.safe_load(Path(e1.path).read_text())["method"][0]
    assert step1["fault"] == "chaosmesh.stress_memory" and step1["size"] == "512MB"  # medium
    assert x1.experiment.method[0].duration == 60 and x1.experiment.recovery == 30
    spec = x2.experiment.targets["pods"]
    assert spec.pod is not None and spec.pod.namespace == "shop" and spec.pod.selector == "app=db"
    assert spec.mode == "percent:50" and spec.pod.seed is not None  # a random share, seeded
    assert x2.experiment.method[0].fault == "chaosmesh.network_partition"


def test_bad_intensity_is_one_line_with_position(tmp_path: Path) -> None:
    bad = tmp_path / "suite.json"
    bad.write_text(EXAMPLE.read_text().replace('"medium"', '"extreme"'))
    out = subprocess.run(
        [PY, "-m", "chaoslab", "suite", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")},
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"{bad}:5:5: experiments[0]: params.intensity: Input should be 'low', 'medium' or 'high'"
    ), out.stderr
