from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from tests.conftest import PY, ROOT

from chaoslab.experiment.schema import experiment_schema

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


def test_the_demo_runs_the_whole_loop(tmp_path: Path, state_dir: Path) -> None:
    runs_dir = tmp_path / "runs"
    proc = subprocess.run([PY, "-m", "chaoslab", "demo", "--runs-dir", str(runs_dir)], capture_output=True,
                          text=True, timeout=180, env={**os.environ, "CHAOSLAB_STATE_DIR": str(state_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pause-under-load.yaml            HELD" in proc.stdout
    assert "kill-without-supervisor.yaml     VIOLATED  exit 1" in proc.stdout
    runs = sorted(runs_dir.iterdir())
    assert len(runs) == 2
    for run in runs:
        for name in ("journal.jsonl", "summary.json", "report.md", "report.html", "junit.xml"):
            assert (run / name).exists(), name
    pause = next(r for r in runs if "pause" in r.name)
    summary = json.loads((pause / "summary.json").read_text())
    loss = summary["analysis"]["data_loss"]
    assert loss["status"].lower() == "checked" and loss["lost"] == [] and loss["acknowledged"] > 100


def test_the_schema_accepts_the_examples_and_rejects_typos() -> None:
    schema = experiment_schema()
    validator = jsonschema.Draft202012Validator(schema)
    basic = [p for p in EXAMPLES if p.parent.name == "basic"]
    assert basic
    for path in basic:
        data = yaml.safe_load(path.read_text())
        validator.validate(data)
    data = yaml.safe_load((ROOT / "examples" / "basic" / "pause-under-load.yaml").read_text())
    data["method"][0]["durration"] = "1s"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)
    data["method"][0].pop("durration")
    data["method"][0]["fault"] = "process.explode"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)


def test_schema_command_prints_json() -> None:
    proc = subprocess.run([PY, "-m", "chaoslab", "schema"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "Step_process_pause" in schema["$defs"]


def test_generated_docs_are_up_to_date() -> None:
    proc = subprocess.run([PY, str(ROOT / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
