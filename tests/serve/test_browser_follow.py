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


def _event(t: float, source: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "t": t, "source": source, "kind": kind, **fields}


def test_events_and_promql_on_the_time_axis_live_and_after(serve: Any, browser: Any, tmp_path: Path) -> None:
    """Stack, container, Kubernetes, eBPF and flamegraph events are markers on the timeline's
    time axis (with the whole record as a tooltip), eBPF counts and a Prometheus probe's values
    are series on it, growing live; the finished page replays the same."""
    from selenium.webdriver.common.by import By

    runs = tmp_path / "runs"
    run_id = "20261201-120000-axis-0003"
    query = "sum(rate(orders_total[10s]))"
    records: list[dict[str, Any]] = [
        {"type": "run", "t": 0.0, "run_id": run_id, "title": "Axis", "started_at": 1.8e9, "pid": 1},
        {"type": "phase", "t": 0.01, "name": "baseline"},
        _event(0.2, "ebpf", "tracer", action="started", tracers=["retransmits"], ports=[5433]),
        _event(0.5, "profile", "flamegraph", phase="baseline", path="flamegraph-baseline.svg", samples=10),
        {"type": "phase", "t": 4.0, "name": "fault"},
        {"type": "fault", "t": 4.0, "action": "inject", "step": 0, "fault": "network.partition", "target": "db",
         "describe": "network.partition on db"},
        _event(5.0, "stack", "health", service="postgres", message="postgres is unhealthy (timed out after 2s)"),
        _event(6.0, "docker", "die", container="exchange-api-1", exit_code=137),
        _event(7.0, "kubernetes", "Killing", object="pod/api-7d9f", pod="api-7d9f", message="Stopping container main",
               count=2, event_type="Normal", component="kubelet", first_t=6.8, last_t=6.8),
        {"type": "fault", "t": 10.0, "action": "revert", "step": 0, "fault": "network.partition", "target": "db",
         "describe": "network.partition on db"},
    ]
    for i in range(12):  # the load's counters, the eBPF counts and the PromQL probe, once a second
        records.append({"type": "load", "t": i + 1.0, "scheduled": 50 * (i + 1), "sent": 50 * (i + 1),
                        "ok": 50 * (i + 1), "failed": 0, "timeout": 0, "unsent": 0, "in_flight": 0, "lag": 0.0})
        records.append(_event(float(i), "ebpf", "retransmits", window=1.0, port=5433, count=8 if 4 <= i < 10 else 0))
        failing = i == 6
        records.append({"type": "sample", "t": i + 0.5, "probe": "order_rate", "ok": not failing,
                        "value": None if failing else 10.0 + i, "latency": 0.01,
                        "error": "no data (the query returned no series)" if failing else None})
    records.sort(key=lambda r: r["t"])
    d = plant_run(runs, run_id, title="Axis", outcome=None, records=records)
    (d / "flamegraph-baseline.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    exp = json.loads((d / "experiment.json").read_text())
    exp["experiment"]["probes"] = {"order_rate": {"prometheus": {"query": query}, "signal": False}}
    (d / "experiment.json").write_text(json.dumps(exp))
    server = serve("--runs-dir", str(runs))
    b = browser

    def check_axis() -> None:
        lane = wait(b, lambda b: b.find_elements(By.CSS_SELECTOR, "#charts svg[aria-label='events']"), 20,
                    "the events lane")[0]
        marks = lane.find_elements(By.CSS_SELECTOR, "g.event-mark")
        by_source: dict[str, Any] = {}
        for m in marks:  # each source's first marker
            by_source.setdefault(m.get_attribute("data-source"), m)
        assert set(by_source) == {"ebpf", "profile", "stack", "docker", "kubernetes"}, list(by_source)
        tip = by_source["stack"].find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert "5.00 s" in tip and "postgres is unhealthy" in tip, tip
        # a Kubernetes Event (platforms/kubeevents.py's shape): which pod, and how often
        tip = by_source["kubernetes"].find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert "kubernetes Killing api-7d9f: Stopping container main (2 times)" in tip, tip
        # on the axis: the stack, docker and kubernetes events inside the fault window, the
        # flamegraph before it
        window = lane.find_element(By.CSS_SELECTOR, "rect")
        lo, hi = window.rect["x"], window.rect["x"] + window.rect["width"]
        for source in ("stack", "docker", "kubernetes"):
            x = by_source[source].find_element(By.TAG_NAME, "path").rect["x"]
            assert lo <= x <= hi, (source, x, lo, hi)
        assert by_source["profile"].find_element(By.TAG_NAME, "path").rect["x"] < lo
        link = by_source["profile"].find_element(By.XPATH, "..")
        assert link.tag_name == "a"
        assert link.get_dom_attribute("href") == f"/runs/{run_id}/files/flamegraph-baseline.svg"
        # the same instants drawn across the throughput chart
        tput = b.find_element(By.CSS_SELECTOR, "#charts svg[aria-label='Throughput (operations per second)']")
        assert len(tput.find_elements(By.CSS_SELECTOR, "line.event-line")) == len(marks)
        assert b.find_elements(By.CSS_SELECTOR, "#charts svg[aria-label='Kernel events per second (eBPF)']")
        # the PromQL series: its values as a line with a gap and a red dot where no data came
        metric = b.find_element(By.CSS_SELECTOR, "#charts svg[aria-label='System metric: order_rate (Prometheus probe)']")
        assert metric.get_attribute("data-query") == query
        assert len(metric.find_elements(By.CSS_SELECTOR, "circle.failed")) == 1
        line = metric.find_elements(By.TAG_NAME, "path")[0].get_attribute("d")
        assert line.count("M") == 2, line  # broken at the sample without data

    b.get(f"{server.url}/runs/{run_id}")
    live = b.find_element(By.ID, "live")
    wait(b, lambda _: live.get_attribute("data-records") == str(len(records)), 20, "the journal so far")
    check_axis()
    b.execute_script("window.notReloaded = 'yes'")
    with open(d / "journal.jsonl", "a") as f:  # a restart the stack copies in at the end
        f.write(json.dumps(_event(11.0, "stack", "restart", service="api", message="api restarted")) + "\n")
    wait(b, lambda b: len(b.find_elements(By.CSS_SELECTOR, "g.event-mark[data-source='stack']")) == 2, 20,
         "the appended stack event as a marker")
    assert b.execute_script("return window.notReloaded") == "yes"
    screenshot(b, "run-events")

    # the run ends: the page becomes the finished run's, which replays the same timeline
    (d / "summary.json").write_text(json.dumps({"run_id": run_id, "title": "Axis", "outcome": "held",
                                                "exit_code": 0, "started_at": 1.8e9,
                                                "analysis": {"phases": {"t_end": 12.0}, "metrics": {}}}))
    wait(b, lambda b: b.find_elements(By.CSS_SELECTOR, "main .badge.held"), 30, "the finished page")
    assert b.execute_script("return window.notReloaded") is None
    wait(b, lambda b: b.find_element(By.ID, "live").get_attribute("data-ended") == "1", 20, "the replay")
    check_axis()
    assert len(b.find_elements(By.CSS_SELECTOR, "g.event-mark[data-source='stack']")) == 2


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


def test_doctor_table_is_checked_again(serve: Any, browser: Any, tmp_path: Path) -> None:
    """The doctor's table follows the machine: a tool installed after the console started shows
    once the page checks again (the checks run in a fresh ``chaoslab doctor`` each time)."""
    import shutil

    from selenium.webdriver.common.by import By

    stress = shutil.which("stress-ng")
    if stress is None:
        pytest.skip("needs Debian's stress-ng")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    server = serve("--runs-dir", str(tmp_path / "runs"), env={"PATH": str(bin_dir)})
    b = browser
    b.get(server.url + "/machine")

    def cap(b: Any) -> str:
        found = b.find_elements(By.CSS_SELECTOR, "tr[data-cap='stress-ng']")
        return str(found[0].text) if found else ""

    wait(b, cap, 60, "the doctor table")
    assert cap(b).startswith("--"), cap(b)
    os.symlink(stress, bin_dir / "stress-ng")  # installed meanwhile
    b.find_element(By.ID, "doctor-refresh").click()
    wait(b, lambda b: cap(b).startswith("ok"), 60, "stress-ng found by the check again")
