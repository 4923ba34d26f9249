"""The console in a real browser (headless chromium through selenium): start an experiment from
the Catalog, watch it reach the fault without a reload, halt it, see it end aborted with the
service running again, and find it on the Runs and Experiment pages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT, Service, proc_state, stopped
from tests.serve.conftest import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EXPERIMENT = (ROOT / "examples" / "basic" / "pause-under-load.yaml").read_text().replace(
    "{fault: process.pause, target: svc, at: 4s, duration: 3s}",
    "{fault: process.pause, target: svc, at: 3s, duration: 60s}",
).replace("max_duration: 1m", "max_duration: 3m")


def wait(driver: Any, cond: Any, timeout: float = 60, what: str = "") -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond, what)
    except TimeoutException:
        try:
            page = driver.find_element("tag name", "body").text[:1500]
        except Exception as exc:  # an alert still open, say
            page = f"(page unreadable: {exc})"
        raise AssertionError(f"waited {timeout} s for {what}; at {driver.current_url}:\n{page}") from None


def confirm(driver: Any) -> str:
    from selenium.webdriver.support import expected_conditions as ec

    alert = wait(driver, ec.alert_is_present(), 10, "a confirmation dialog")
    text = str(alert.text)
    alert.accept()
    return text


def test_run_from_catalog_watch_halt_compare(serve: Any, browser: Any, service: Service, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    assert "60s" in EXPERIMENT
    exps, runs = tmp_path / "experiments", tmp_path / "runs"
    exps.mkdir()
    (exps / "pause-long.yaml").write_text(EXPERIMENT)
    server = serve("--runs-dir", str(runs), "--experiments", str(exps), "--var", f"PORT={service.port}")
    d = browser

    # Catalog -> the experiment's page with its dry-run plan -> Run (confirmed)
    d.get(server.url + "/catalog")
    screenshot(d, "catalog")
    d.find_element(By.LINK_TEXT, "Pause a small HTTP service under load").click()
    plan = wait(d, lambda d: d.find_element(By.ID, "plan"), 60, "the dry-run plan").text
    assert "process.pause" in plan and f"pid {service.pid}" in plan, plan  # resolved now
    screenshot(d, "experiment-plan")
    d.find_element(By.ID, "run").click()
    assert "injects real faults" in confirm(d)

    # the launch page follows the child to its run directory, then the run page goes live
    wait(d, lambda d: "/runs/" in d.current_url, 60, "the run page")
    run_id = d.current_url.rsplit("/", 1)[1]
    d.execute_script("window.notReloaded = 'yes'")
    badge = d.find_element(By.CSS_SELECTOR, "main .badge")
    wait(d, lambda d: badge.text == "fault", 60, "the fault phase, live")
    # the same page, never reloaded, grew the timeline from the stream
    assert d.execute_script("return window.notReloaded") == "yes"
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#charts rect.fault-window"), 10, "a shaded fault window")
    wait(d, lambda d: "process.pause" in d.find_element(By.ID, "faults").text, 10, "the ledger's fault in force")
    wait(d, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#charts svg[aria-label='Latency of successful operations (from due time)']"),
        10, "the live p50/p99 chart from the load's history")
    assert stopped(service.pid)  # the fault is real: the service is stopped
    assert int(d.find_element(By.ID, "live").get_attribute("data-records")) > 10
    screenshot(d, "run-live")

    # Halt (confirmed): the run aborts, reverts, and the page shows it ended aborted
    d.find_element(By.ID, "halt").click()
    assert "reverts its faults" in confirm(d)
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "main .badge.aborted"), 60, "the run ended aborted")
    assert proc_state(service.pid) != "T", "the service was left stopped"
    summary = json.loads((runs / run_id / "summary.json").read_text())
    assert summary["outcome"] == "aborted" and summary["exit_code"] == 3
    assert "SIGTERM" in summary["reason"]
    links = [a.text for a in d.find_elements(By.CSS_SELECTOR, ".downloads a")]
    assert {"report.html", "junit.xml", "summary.json", "journal.jsonl"} <= set(links)
    assert d.find_elements(By.ID, "report")
    screenshot(d, "run-done")

    # the Runs page lists it
    d.get(server.url + "/runs")
    row = d.find_element(By.CSS_SELECTOR, f"tr[data-run='{run_id}']")
    assert "aborted" in row.text
    screenshot(d, "runs")

    # a planted earlier run of the same experiment that held: the newest is a regression
    planted = runs / ("20200101-000000-" + run_id.split("-", 2)[2])
    shutil.copytree(runs / run_id, planted)
    old = json.loads((planted / "summary.json").read_text())
    old.update(outcome="held", exit_code=0, reason=None, started_at=summary["started_at"] - 3600)
    old["analysis"]["metrics"].update(detection_time=0.1, time_to_recovery=0.5)
    (planted / "summary.json").write_text(json.dumps(old))
    d.get(server.url + "/runs")
    row = d.find_element(By.CSS_SELECTOR, f"tr[data-run='{run_id}']")
    row.find_element(By.LINK_TEXT, "trend").click()
    trend = d.find_elements(By.CSS_SELECTOR, "#trend tr[data-run], #trend tr")[1:]
    assert len(trend) == 2, [t.text for t in trend]
    flag = d.find_element(By.ID, "regressions").text
    assert "Regression" in flag and "verdict held -> aborted" in flag, flag
    screenshot(d, "experiment-trend")

    # This machine: no fault left in force, no halt
    d.get(server.url + "/machine")
    wait(d, lambda d: d.find_elements(By.ID, "doctor"), 60, "the doctor table")
    assert d.find_elements(By.ID, "faults-none")
    assert "no halt in force" in d.find_element(By.ID, "halt-state").text
    screenshot(d, "machine")


def test_live_page_grows_and_draws_the_systems_metrics(serve: Any, browser: Any, tmp_path: Path) -> None:
    """A running run's page draws what its journal holds and grows as records are appended,
    the system's own metrics (a Prometheus probe) on the same time axis."""
    from selenium.webdriver.common.by import By
    from tests.serve.plant import plant_run

    runs = tmp_path / "runs"
    run_id = "20261201-120000-live-0002"
    d = plant_run(runs, run_id, outcome=None)
    exp = json.loads((d / "experiment.json").read_text())
    exp["experiment"]["probes"] = {"breaker": {"prometheus": {"query": "breaker_state"}}}
    (d / "experiment.json").write_text(json.dumps(exp))
    with open(d / "journal.jsonl", "a") as f:
        for i in range(10):
            f.write(json.dumps({"type": "sample", "t": 0.5 * i, "probe": "breaker", "ok": True, "value": float(i % 3)}) + "\n")
    server = serve("--runs-dir", str(runs))
    browser.get(f"{server.url}/runs/{run_id}")
    live = browser.find_element(By.ID, "live")
    wait(browser, lambda _: live.get_attribute("data-records") == "12", 20, "the journal so far")
    browser.execute_script("window.notReloaded = 'yes'")
    with open(d / "journal.jsonl", "a") as f:
        f.write(json.dumps({"type": "phase", "t": 5.0, "name": "fault"}) + "\n")
        f.write(json.dumps({"type": "fault", "t": 5.0, "action": "inject", "step": 0, "fault": "process.pause",
                            "target": "svc", "describe": "process.pause on svc"}) + "\n")
    wait(browser, lambda _: live.get_attribute("data-records") == "14", 20, "the appended records")
    assert browser.find_element(By.CSS_SELECTOR, "main .badge").text == "fault"
    assert browser.execute_script("return window.notReloaded") == "yes"
    titles = [e.get_attribute("aria-label") for e in browser.find_elements(By.CSS_SELECTOR, "#charts svg")]
    assert "System metric: breaker (Prometheus probe)" in titles, titles
    assert "process.pause on svc" in browser.find_element(By.ID, "events").get_attribute("textContent")
