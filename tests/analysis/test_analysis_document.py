"""analysis.json stays the document it was before the analysis was typed (issue 26).

tests/analysis/golden/ holds run directories (their journal, history, final read and experiment),
each beside the analysis.json, report.md and junit.xml that the untyped analysis (a dict whose
outcome the verdict filled in afterwards, commit deccb0f) wrote for it, with the run directory's
path replaced by ``@RUN_DIR@``. Ten are real runs left by the suite (held, violated, aborted, error;
eBPF, flamegraphs, poison, stack and Docker events, a crashed run); the two ``invalid-*`` were
built with analysis_rundirs.py (a load generator 300 ms late). The typed analysis must write them
byte for byte. One deliberate change since: detection takes the earliest signal by its time, not
the first record written (issue 25), which moved the detection time (and what detected it) of
stack-restart-policy, docker-container-events and poison-and-stack-events.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chaoslab.analysis import Analysis, analyze
from chaoslab.runner.verdict import conclude

GOLDEN = Path(__file__).parent / "golden"
RUNS = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
FILES = {"json": "analysis.json", "md": "report.md", "junit": "junit.xml"}


def _copy(name: str, tmp_path: Path) -> Path:
    run = tmp_path / name
    shutil.copytree(GOLDEN / name / "run", run)
    return run


def test_the_golden_runs_are_there() -> None:
    assert len(RUNS) >= 6


@pytest.mark.parametrize("name", RUNS)
def test_reports_are_written_as_before(name: str, tmp_path: Path) -> None:
    run = _copy(name, tmp_path)
    result = conclude(run, tuple(FILES))
    assert result.reports == [run / f for f in FILES.values()]
    for f in FILES.values():
        expected = (GOLDEN / name / f).read_text(encoding="utf-8").replace("@RUN_DIR@", str(run))
        assert (run / f).read_text(encoding="utf-8") == expected, f


@pytest.mark.parametrize("name", RUNS)
def test_the_typed_analysis_is_its_document(name: str, tmp_path: Path) -> None:
    """The attributes, the document and summary.json say the same, and the outcome is the
    analysis's own (not filled in afterwards)."""
    run = _copy(name, tmp_path)
    result = conclude(run, ("json",))
    a = result.analysis
    assert isinstance(a, Analysis)
    doc = json.loads((run / "analysis.json").read_text())
    assert json.loads(json.dumps(a.to_json(), default=str)) == doc
    assert json.loads((run / "summary.json").read_text())["analysis"] == doc
    assert (a.outcome, int(a.verdict.exit_code), a.verdict.reason) == (result.outcome, result.exit_code, result.reason)
    assert doc["outcome"] == a.outcome and doc["held"] == a.held and doc["valid"] == a.valid
    assert doc["hypothesis"] == [h.to_dict() for h in a.judgement.assertions]
    assert doc["metrics"] == json.loads(json.dumps(a.metrics)) and a["metrics"] is a.metrics
    # analysed alone (as `chaoslab.analyze` and the pytest session do), the same document
    assert json.loads(json.dumps(analyze(run).to_json(), default=str)) == doc
