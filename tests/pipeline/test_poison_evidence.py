"""Evidence for poison-message injection: a consumer with a planted bug (it stores records
whose amount has too many decimals) run under experiment 11 through `chaoslab run`; chaoslab
must report exactly that kind, with exactly the count the history tagged, and nothing else."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_stack import PIPELINE, pipeline_stack
from tests.conftest import ROOT

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_chaoslab_reports_exactly_the_planted_kind_and_count(tmp_path: Path) -> None:
    with pipeline_stack(PIPELINE_BUG_ACCEPT="bad_decimal") as p:
        ports = {f"PIPELINE_{k}_PORT": str(v) for k, v in p.ports.items()}
        text = (PIPELINE / "experiments" / "11-data-corruption.yaml").read_text()
        text = re.sub(
            r"\$\{(PIPELINE_\w+):-([^}]*)\}", lambda m: ports.get(m.group(1), m.group(2)), text
        )
        exp = PIPELINE / "experiments" / f".pipelinetest-{p.token}-11.yaml"
        exp.write_text(
            text.replace("stack: ../stack.yaml", f"stack: ../{os.path.basename(p.file)}")
        )
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "chaoslab",
                    "run",
                    str(exp),
                    "--var",
                    "FAULT_AT=4s",
                    "--var",
                    "DOWN_FOR=2s",
                    "--var",
                    "RECOVERY=6s",
                    "--var",
                    "RATE=60/s",
                    "--runs-dir",
                    str(tmp_path),
                ],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=ROOT,
                env={**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path) + "/state"},
            )
        finally:
            exp.unlink(missing_ok=True)
        assert out.returncode == 1, out.stdout + out.stderr
        run_dir = next(d for d in tmp_path.iterdir() if d.is_dir() and d.name != "state")
        history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()[1:]]
        sent = [o for o in history if o.get("poison") == "bad_decimal" and o.get("t_sent") is not None]
        # our own count, from PostgreSQL: every tagged record stored as valid, acknowledged or not
        # (on a busy machine a request can time out at the client and still be stored)
        where = p.placements([str(o.get("ack_id") or o["key"]) for o in sent])
        stored = sum(1 for w in where.values() if "events" in w)
    analysis = json.loads((run_dir / "analysis.json").read_text())
    tagged = sum(1 for o in sent if o.get("ack"))
    kinds = analysis["poison"]["kinds"]
    assert tagged > 0 and stored >= tagged and kinds["bad_decimal"]["stored_as_valid"] == stored
    assert {k for k, r in kinds.items() if r["stored_as_valid"]} == {"bad_decimal"}
    assert analysis["metrics"]["poison_stored_as_valid"] == stored
    assert analysis["metrics"]["poison_lost"] == 0
    assert any(
        f.startswith(f"Defect bad_decimal got through: {stored} ") for f in analysis["findings"]
    )
