"""The Prometheus probe against a real Prometheus scraping a real prometheus-client app that
exposes the exchange's metric names, with the seeds' PromQL."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port, wait_for_port

from chaoslab.experiment.loader import load_experiment
from chaoslab.journal import read_journal
from chaoslab.runner.run import RunOptions, run_experiment

from .conftest import Procs, Prometheus, metrics_app, sample

# The seeds' rate(orders_total[1m]) with a 10 s window: rate() extrapolates little past the data,
# so a 1 m window reads low until a minute has been scraped.
RATE = "sum(rate(orders_total[10s]))"
P95 = "histogram_quantile(0.95, sum by (le) (rate(order_processing_duration_seconds_bucket[1m])))"


def test_seed_promql_thresholds_ranges_and_baseline(procs: Procs, prometheus: Prometheus) -> None:
    port = metrics_app(procs, rate=20)
    prom = prometheus.start([f"127.0.0.1:{port}"])
    prom.wait_for(f"{RATE} > 5")
    prom.wait_for(f"{P95} > 0")
    url = prom.url

    ok = sample({"prometheus": {"url": url, "query": RATE}, "expect": {"min": 5, "max": 60}})[0]
    assert ok.ok, ok
    assert 5 < ok.value < 60  # ~20 orders/s

    p95 = sample({"prometheus": {"url": url, "query": P95}, "expect": {"max": 0.025}})[0]
    assert p95.ok and 0.01 <= p95.value <= 0.025, p95  # observations are 5..20 ms

    too_slow = sample({"prometheus": {"url": url, "query": P95}, "expect": {"max": 0.005}})[0]
    assert not too_slow.ok and "above 0.005" in str(too_slow.error)

    ranged = sample(
        {
            "prometheus": {"url": url, "query": "orders_total", "range": "10s", "reduce": "max"},
            "expect": {"min": 1},
        }
    )[0]
    assert ranged.ok and ranged.value >= 1, ranged

    empty = sample({"prometheus": {"url": url, "query": 'orders_total{status="NOPE"}'}})[0]
    assert not empty.ok and "no data" in str(empty.error)
    zero = sample(
        {
            "prometheus": {"url": url, "query": 'orders_total{status="NOPE"}', "empty": "zero"},
            "expect": {"max": 0},
        }
    )[0]
    assert zero.ok and zero.value == 0

    bad = sample({"prometheus": {"url": url, "query": "rate(orders_total[1m"}})[0]
    assert not bad.ok and "bad_data" in str(bad.error)

    # baseline tolerance: the first two samples are the baseline, the third is judged against it
    steady = sample(
        {
            "prometheus": {"url": url, "query": RATE},
            "expect": {"baseline": {"samples": 2, "max_ratio": 2, "min_ratio": 0.5}},
        },
        samples=3,
    )
    assert all(s.ok for s in steady), steady
    strict = sample(
        {
            "prometheus": {"url": url, "query": RATE},
            "expect": {"baseline": {"samples": 2, "max_ratio": 0.5}},
        },
        samples=3,
    )
    assert [s.ok for s in strict] == [True, True, False], strict
    assert "above 0.5x the baseline" in str(strict[2].error)

    down = sample({"prometheus": {"url": f"http://127.0.0.1:{free_port()}", "query": RATE}})[0]
    assert not down.ok and "ConnectError" in str(down.error)


def test_promql_probe_in_a_run_detects_a_paused_target(
    procs: Procs, prometheus: Prometheus, tmp_path: Path, state_dir: Path
) -> None:
    """`up` of the scraped app drops while it is paused: the probe fails during the fault only,
    and the hypothesis and a stop condition can use it like any probe."""
    app = procs.app("metrics_app.py", str(port := free_port()), "20")
    wait_for_port(port)
    prom = prometheus.start([f"127.0.0.1:{port}"])
    prom.wait_for("up == 1")
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""
title: promql probe sees a paused scrape target
targets:
  app: {{pid: {app.pid}}}
probes:
  scrape:
    prometheus: {{url: "{prom.url}", query: 'min(up)'}}
    every: 500ms
    timeout: 1s
    expect: {{min: 1}}
method:
  - {{fault: process.pause, target: app, at: 3s, duration: 5s}}
recovery: 5s
stop_conditions:
  - {{probe: scrape, failing_for: 60s}}
hypothesis:
  probe.scrape.availability.baseline: {{min: 1}}
  probe.scrape.failures.fault: {{min: 1}}
  probe.scrape.value.min.baseline: {{equals: 1}}
  probe.scrape.value.min.fault: {{max: 0}}
""")
    result = run_experiment(
        load_experiment(exp),
        RunOptions(run_root=tmp_path / "runs", reports=("json",), print=lambda s: None),
    )
    assert result.exit_code == 0, (
        result.reason,
        result.analysis and result.analysis.get("hypothesis"),
    )
    assert result.run_dir is not None
    samples = [r for r in read_journal(result.run_dir) if r["type"] == "sample"]
    failing = [r for r in samples if not r["ok"]]
    assert failing and all("below 1" in r["error"] for r in failing), failing[:3]
