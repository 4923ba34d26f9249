"""The console's pages following what changes, in a real browser (headless chromium): a suite
started from the Catalog, the run's events and its PromQL series on the timeline's time axis
(live and after the run), the Runs page following the runs directory by server-sent events, and
the doctor's table checked again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Service
from tests.serve.conftest import screenshot
from tests.serve.plant import plant_run
from tests.serve.test_browser import confirm, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SHORT_PAUSE = """\
title: Short pause
targets:
  svc: {process: "service.py --port ${PORT}$"}
probes:
  health:
    http: {url: "http://127.0.0.1:${PORT}/health"}
    every: 200ms
    timeout: 500ms
    expect: {status: 200}
method:
  - {fault: process.pause, target: svc, at: 1s, duration: 1s}
recovery: 1s
max_duration: 1m
"""


def test_run_a_suite_from_the_catalog(serve: Any, browser: Any, service: Service, tmp_path: Path) -> None:
    """Run on a suite (confirmed) starts ``chaoslab suite run`` in its own session; the page
    follows it to its first run, and both runs and the suite's report land in suite-<id>/."""
    from selenium.webdriver.common.by import By

    exps, runs = tmp_path / "experiments", tmp_path / "runs"
    exps.mkdir()
    (exps / "short-pause.yaml").write_text(SHORT_PAUSE)
    (exps / "suite.yaml").write_text("name: Two short pauses\nexperiments: [short-pause.yaml, short-pause.yaml]\n")
    server = serve("--runs-dir", str(runs), "--experiments", str(exps), "--var", f"PORT={service.port}")
    d = browser
    d.get(server.url + "/catalog")
    d.find_element(By.LINK_TEXT, "Two short pauses").click()
    steps = [li.text for li in wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#suite li"), 30, "the suite's list")]
    assert steps == ["Short pause", "Short pause"], steps
    screenshot(d, "suite")
    d.find_element(By.ID, "run").click()
    assert "suite 'Two short pauses'" in confirm(d)

    wait(d, lambda d: "/runs/" in d.current_url, 60, "the suite's first run page")
    run_id = d.current_url.rsplit("/", 1)[1]
    suites = list(runs.glob("suite-*"))
    assert len(suites) == 1 and (suites[0] / run_id / "journal.jsonl").is_file()
    suite_dir = suites[0]
    first = json.loads((suite_dir / run_id / "journal.jsonl").read_text().splitlines()[0])
    pid = int(first["pid"])  # the suite's process writes each of its runs
    try:
        assert os.getsid(pid) == pid, "the suite's process is not in its own session"
    except ProcessLookupError:
        pytest.fail("the suite's process ended before its first run was shown")

    def both_done() -> bool:
        done = [p for p in suite_dir.glob("*/summary.json")]
        return len(done) == 2 and (suite_dir / "suite.md").is_file()

    wait(d, lambda _: both_done(), 120, "both runs of the suite and its report")
    d.get(server.url + "/runs")
    rows = d.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")
    assert {r.get_attribute("data-run") for r in rows} == {p.name for p in suite_dir.iterdir() if p.is_dir()}
    assert all("Short pause" in r.text for r in rows)


def test_runs_page_follows_runs_by_server_sent_events(serve: Any, browser: Any, tmp_path: Path) -> None:
    """New runs appear, a live row's phase moves, a finished row gets its verdict, without a
    reload and without rebuilding the table (a row nothing happened to is the same element)."""
    from selenium.webdriver.common.by import By

    runs = tmp_path / "runs"
    plant_run(runs, "20261201-100000-old-0001", title="Old", started_at=1.8e9)
    live = plant_run(runs, "20261201-110000-live-0002", title="Live", started_at=1.8e9 + 3600, outcome=None)
    server = serve("--runs-dir", str(runs))
    b = browser
    b.get(server.url + "/runs")
    table = b.find_element(By.ID, "runs")
    assert table.get_attribute("data-stream")
    old = b.find_element(By.CSS_SELECTOR, "tr[data-run='20261201-100000-old-0001']")
    b.execute_script("window.notReloaded = 'yes'")

    def row(run_id: str) -> str | None:
        """The row's text, read in one step (a live row is replaced whenever it changes)."""
        text = b.execute_script(f"const r = document.querySelector(\"tr[data-run='{run_id}']\"); "
                                "return r && r.textContent")
        return None if text is None else str(text)

    # a new run appears, at the top (newest first)
    plant_run(runs, "20261201-120000-new-0003", title="New", started_at=1.8e9 + 7200, outcome=None)
    wait(b, lambda _: row("20261201-120000-new-0003") is not None, 20, "the new run's row")
    first = b.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")[0]
    assert first.get_attribute("data-run") == "20261201-120000-new-0003"
    # the live run's phase moves, then it gets its verdict
    with open(live / "journal.jsonl", "a") as f:
        f.write(json.dumps({"type": "phase", "t": 3.0, "name": "fault"}) + "\n")
    wait(b, lambda _: "fault" in (row("20261201-110000-live-0002") or ""), 20, "the live row's phase")
    (live / "summary.json").write_text(json.dumps({"outcome": "violated", "started_at": 1.8e9 + 3600,
                                                   "analysis": {"phases": {"t_end": 9.0}, "metrics": {}}}))
    wait(b, lambda _: "violated" in (row("20261201-110000-live-0002") or ""), 20, "the verdict")
    # nothing rebuilt the rest: the old row is the element it was, and the page never reloaded
    assert old.get_attribute("data-run") == "20261201-100000-old-0001"  # raises if the element is stale
    assert b.execute_script("return window.notReloaded") == "yes"
