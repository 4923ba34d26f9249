from __future__ import annotations

import json
import subprocess

import jsonschema
import pytest
import yaml
from tests.conftest import PY, ROOT

from chaoslab.experiment.schema import experiment_schema

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


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
    proc = subprocess.run(
        [PY, "-m", "chaoslab", "schema"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "Step_process_pause" in schema["$defs"]


def test_generated_docs_are_up_to_date() -> None:
    proc = subprocess.run(
        [PY, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
