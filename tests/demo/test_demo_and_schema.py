from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from tests.conftest import PY, ROOT

from chaoslab.experiment.schema import experiment_schema

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


EXCHANGE_PORTS = (8000, 8080, 8081, 8082, 8474, 5433, 6380, 15433, 16380)


def _exchange_state() -> tuple[bool, list[int]]:
    """(the exchange stack is up, the exchange ports held by something else)."""
    import socket

    from chaoslab.stack import Stack

    if Stack.load(ROOT / "examples" / "exchange" / "stack.yaml").is_up():
        return True, []
    busy = []
    for port in EXCHANGE_PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return False, busy


def test_the_demo_runs_the_whole_loop(tmp_path: Path, state_dir: Path) -> None:
    was_up, busy = _exchange_state()
    if busy:
        pytest.skip(f"the exchange's fixed ports {busy} are held by something else")
    runs_dir = tmp_path / "runs"
    proc = subprocess.run([PY, "-m", "chaoslab", "demo", "--quick", "--runs-dir", str(runs_dir)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CHAOSLAB_STATE_DIR": str(state_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary_lines = proc.stdout.split("== demo summary", 1)[1]
    for name in ("01-database-sudden-death.yaml", "02-network-partition.yaml", "07-redis-cache-failure.yaml"):
        assert name in summary_lines
    assert re.search(r"01-database-sudden-death\.yaml\s+HELD\s+exit 0", summary_lines)
    runs = sorted(runs_dir.iterdir())
    assert len(runs) == 3
    for run in runs:
        for name in ("journal.jsonl", "summary.json", "report.md", "report.html", "junit.xml"):
            assert (run / name).exists(), name
        assert str(run) in proc.stdout  # the demo says where the reports are
    death = next(r for r in runs if "database-sudden-death" in r.name)
    loss = json.loads((death / "summary.json").read_text())["analysis"]["data_loss"]
    assert loss["status"].lower() == "checked" and loss["lost"] == [] and loss["acknowledged"] > 300
    # The demo leaves the exchange as it found it: down again if it brought it up.
    assert _exchange_state()[0] == was_up


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
