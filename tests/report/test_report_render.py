"""Reports rendered from a hand-built run: Markdown, self-contained HTML, JUnit XML, JSON, CLI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chaoslab.analysis import analyze
from chaoslab.cli.commands import report
from chaoslab.report import write_reports


def _run(run_dir: Path, *, crashed: bool = False) -> Path:
    """A run: fault 5-8 s, failures until 10 s, two acked writes lost, a failing probe lane."""
    run_dir.mkdir(parents=True, exist_ok=True)
    experiment = {
        "title": "Database <sudden> death",
        "description": "Kill the database under load.",
        "probes": {"health": {"every": 0.5}},
        "verify": {"python": "m:f"},
        "method": [{"fault": "process.kill", "target": "db"}],
        "hypothesis": {
            "time_to_recovery": {"max": 30},
            "lost_writes": {"max": 0},
            "latency.p99.baseline": {"max": 0.05},
        },
    }
    (run_dir / "experiment.json").write_text(
        json.dumps({"path": "x.yaml", "experiment": experiment})
    )
    journal: list[dict[str, Any]] = [
        {"type": "phase", "t": 0, "name": "baseline"},
        {"type": "phase", "t": 5, "name": "fault"},
        {
            "type": "fault",
            "t": 5,
            "action": "inject",
            "step": 0,
            "fault": "process.kill",
            "target": "db",
            "describe": "SIGKILL postgres",
        },
    ]
    if not crashed:
        journal += [
            {
                "type": "fault",
                "t": 8,
                "action": "revert",
                "step": 0,
                "fault": "process.kill",
                "target": "db",
                "describe": "",
            },
            {"type": "phase", "t": 8, "name": "recovery"},
        ]
    end = 7.0 if crashed else 15.0
    journal += [
        {"type": "sample", "t": k / 2, "probe": "health", "ok": not 5 <= k / 2 < 10, "error": None}
        for k in range(int(end * 2))
    ]
    if not crashed:
        journal += [
            {"type": "phase", "t": 15, "name": "end"},
            {"type": "end", "t": 15, "errors": []},
        ]
    journal.sort(key=lambda r: r["t"])
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in journal))
    ops = [{"type": "load", "run": "r", "max_lag": 0.1}]
    for k in range(int(end * 40)):
        t = k / 40
        bad = 5 <= t < 10
        ops.append(
            {
                "id": k,
                "key": f"r-{k}",
                "t_scheduled": t,
                "t_sent": t,
                "t_done": t + 0.01,
                "outcome": "timeout" if bad else "ok",
                "status": None if bad else 201,
                "latency": 0.01 + (k % 10) / 1000,
                "ack": not bad,
            }
        )
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ops))
    kept = [f"r-{k}" for k in range(int(end * 40)) if not 5 <= k / 40 < 10 and k not in (3, 9)]
    (run_dir / "verify.json").write_text(json.dumps({"ok": True, "ids": kept}))
    return run_dir


def test_all_formats(tmp_path: Path) -> None:
    run = _run(tmp_path)
    paths = write_reports(run)
    assert [p.name for p in paths] == ["report.md", "report.html", "junit.xml", "analysis.json"]

    md = (run / "report.md").read_text()
    assert "**Verdict: VIOLATED**" in md
    assert "2 acknowledged write(s) were LOST: r-3, r-9." in md
    assert "## Recommendations" in md and "acknowledge only after the write is durable" in md
    assert re.search(r"\| `time_to_recovery` \| 2\.0s \| <= 30\.0s \| pass \|", md), md
    assert "| `lost_writes` | 2 | <= 0 | **FAIL** |" in md

    suite = ET.fromstring((run / "junit.xml").read_text())
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "time_to_recovery",
        "lost_writes",
        "latency.p99.baseline",
    ]
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert cases[1].find("failure") is not None and cases[0].find("failure") is None
    assert "lost_writes = 2, expected <= 0" in cases[1].find("failure").get("message")  # type: ignore[union-attr]

    doc = json.loads((run / "analysis.json").read_text())
    assert doc["metrics"] == json.loads(json.dumps(analyze(run)["metrics"]))
    assert doc["held"] is False


def test_html_is_self_contained_with_charts(tmp_path: Path) -> None:
    run = _run(tmp_path)
    write_reports(run, ["html"])
    page = (run / "report.html").read_text()
    # opens offline: nothing is fetched (no scripts, stylesheets, images or fonts from anywhere)
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"(src|href)\s*=", page)
    assert "url(" not in page and "@import" not in page
    assert page.count("<svg") == 4  # throughput, error rate, latency, probe lanes
    assert page.count('fill="#f4b6b6"') == 4  # the fault window shaded on each
    assert "Database &lt;sudden&gt; death" in page  # escaped
    assert "VIOLATED" in page and "<td class=fail>FAIL</td>" in page


def test_reports_of_a_crashed_run(tmp_path: Path) -> None:
    run = _run(tmp_path, crashed=True)
    write_reports(run)
    md = (run / "report.md").read_text()
    assert "crashed or was killed" in md
    assert "| `time_to_recovery` | n/a (the run ended (crashed) before recovery) |" in md


def test_cli(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    result = CliRunner().invoke(report, [str(run), "--format", "md,junit"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(run / "report.md"), str(run / "junit.xml")]
    assert not (run / "report.html").exists()

    bad = CliRunner().invoke(report, [str(run), "--format", "md,pdf"])
    assert bad.exit_code == 2 and "unknown format pdf" in bad.output

    (tmp_path / "empty").mkdir()
    none = CliRunner().invoke(report, [str(tmp_path / "empty")])
    assert none.exit_code == 1 and "not a run directory" in none.output


def test_write_reports_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        write_reports(_run(tmp_path), ["pdf"])
