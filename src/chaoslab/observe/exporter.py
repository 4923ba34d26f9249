"""Chaos state as Prometheus metrics: the live exporter of ``chaoslab run --metrics-port``.

Every series carries an ``experiment`` label (the title) so the standalone exporter, which serves
many runs, exposes the same names. What is exposed (see docs/observability.md):

  chaoslab_experiment_active{experiment}                  1 while a run of it is going on
  chaoslab_phase{experiment,phase}                        1 for the current phase
  chaoslab_fault_active{experiment,fault,target}          1 while the fault is injected
  chaoslab_fault_injections_total{experiment,fault,target}
  chaoslab_probe_success{experiment,probe}                the last sample: 1 ok, 0 failing
  chaoslab_probe_failures_total{experiment,probe}
  chaoslab_probe_latency_seconds{experiment,probe}        histogram
  chaoslab_load_target_rate{experiment}                   operations/s the generator is asked for
  chaoslab_load_operations_total{experiment,outcome}      ok, fail, timeout, unsent
  chaoslab_load_latency_seconds{experiment}               histogram of successful operations
  chaoslab_ebpf_events_total{experiment,kind}             retransmits, resets, oom_kills, ...
  chaoslab_aborts_total{experiment}
  chaoslab_last_verdict{experiment,outcome}               1 for the outcome of the last finished run
  chaoslab_last_exit_code{experiment}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..journal import HISTORY, SUMMARY, Tail
from ..records import Record
from .state import VERDICTS, Histogram, RunState

PHASES = ("baseline", "fault", "recovery", "verify", "end")


class StateCollector(Collector):
    """Metric families for the ``RunState`` objects ``states()`` returns at scrape time."""

    def __init__(self, states: Callable[[], Iterable[RunState]]) -> None:
        self._states = states

    def collect(self) -> Iterator[Metric]:
        states = list(self._states())
        yield from _families(states)


def _families(states: list[RunState]) -> Iterator[Metric]:
    active = GaugeMetricFamily("chaoslab_experiment_active", "1 while a run of the experiment is going on.",
                               labels=["experiment"])
    phase = GaugeMetricFamily("chaoslab_phase", "1 for the run's current phase.", labels=["experiment", "phase"])
    fault = GaugeMetricFamily("chaoslab_fault_active", "1 while the fault is injected.",
                              labels=["experiment", "fault", "target"])
    inj = CounterMetricFamily("chaoslab_fault_injections", "Fault injections.", labels=["experiment", "fault", "target"])
    pok = GaugeMetricFamily("chaoslab_probe_success", "Last probe sample: 1 ok, 0 failing.",
                            labels=["experiment", "probe"])
    pfail = CounterMetricFamily("chaoslab_probe_failures", "Failed probe samples.", labels=["experiment", "probe"])
    plat = HistogramMetricFamily("chaoslab_probe_latency_seconds", "Probe sample latency.",
                                 labels=["experiment", "probe"])
    rate = GaugeMetricFamily("chaoslab_load_target_rate", "Operations per second the load generator is asked for.",
                             labels=["experiment"])
    ops = CounterMetricFamily("chaoslab_load_operations", "Load-generator operations by outcome.",
                              labels=["experiment", "outcome"])
    llat = HistogramMetricFamily("chaoslab_load_latency_seconds",
                                 "Latency of successful operations, from their due time.", labels=["experiment"])
    ebpf = CounterMetricFamily("chaoslab_ebpf_events", "Kernel events counted by the eBPF tracer.",
                               labels=["experiment", "kind"])
    aborts = CounterMetricFamily("chaoslab_aborts", "Runs stopped early (stop condition, halt, signal).",
                                 labels=["experiment"])
    verdict = GaugeMetricFamily("chaoslab_last_verdict", "1 for the outcome of the last finished run.",
                                labels=["experiment", "outcome"])
    code = GaugeMetricFamily("chaoslab_last_exit_code", "Exit code of the last finished run.", labels=["experiment"])
    for s in states:
        e = s.experiment
        active.add_metric([e], float(s.active))
        if s.active:
            for p in PHASES:
                phase.add_metric([e, p], float(s.phase == p))
        for (f, t), on in sorted(s.faults_active.items()):
            fault.add_metric([e, f, t], float(on and s.active))
        for (f, t), n in sorted(s.injections.items()):
            inj.add_metric([e, f, t], float(n))
        for p, ok in sorted(s.probe_ok.items()):
            pok.add_metric([e, p], float(ok))
            pfail.add_metric([e, p], float(s.probe_failures.get(p, 0)))
        for p, h in sorted(s.probe_latency.items()):
            plat.add_metric([e, p], h.buckets(), h.total)
        if s.load_rate is not None:
            rate.add_metric([e], s.load_rate if s.active else 0.0)
        for outcome, n in sorted(s.load_ops.items()):
            ops.add_metric([e, outcome], float(n))
        if s.load_ops:
            llat.add_metric([e], s.load_latency.buckets(), s.load_latency.total)
        for k, count in sorted(s.ebpf.items()):
            ebpf.add_metric([e, k], count)
        aborts.add_metric([e], float(s.aborts))
        if s.verdict is not None:
            for v in sorted({*VERDICTS, s.verdict}):
                verdict.add_metric([e, v], float(v == s.verdict))
        if s.exit_code is not None:
            code.add_metric([e], float(s.exit_code))
    yield from (active, phase, fault, inj, pok, pfail, plat, rate, ops, llat, ebpf, aborts, verdict, code)


def last_finished(runs_dir: Path, title: str, exclude: str) -> RunState | None:
    """The verdict of the latest earlier run of ``title`` in ``runs_dir`` (run ids sort by time)."""
    if not runs_dir.is_dir():
        return None
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and p.name != exclude), reverse=True):
        try:
            summary = json.loads((d / SUMMARY).read_text())
        except (OSError, ValueError):
            continue
        if summary.get("title") == title:
            state = RunState(experiment=title)
            state.apply_summary(summary)
            return state
    return None


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """prometheus-client's HTTP server on ``host:port`` (OSError when the port is taken)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread


class RunExporter:
    """An ``Observer`` serving the running experiment's state on 127.0.0.1:``port``."""

    def __init__(self, port: int, host: str = "127.0.0.1", history_every: float = 0.5) -> None:
        self.port = port
        self.host = host
        self.state = RunState()
        self.previous: RunState | None = None
        self.history_every = history_every
        self._lock = threading.Lock()  # scrapes run on the server's thread
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._history: Tail | None = None
        self._stopped = asyncio.Event()

    async def start(self, ctx: Any) -> None:
        title = str(getattr(ctx.experiment, "title", "") or ctx.run_id)
        self.state = RunState(experiment=title, run_id=ctx.run_id, active=True)
        self.previous = last_finished(Path(ctx.run_dir).parent, title, ctx.run_id)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StateCollector(self._states))
        self._server, self._thread = serve(registry, self.port, self.host)
        self._history = Tail(Path(ctx.run_dir) / HISTORY)
        self._stopped = asyncio.Event()
        self._task = asyncio.create_task(self._follow_history(), name="exporter-history")

    def _states(self) -> list[RunState]:
        with self._lock:
            s = self.state
            current = RunState(**{k: _copy(v) for k, v in vars(s).items()})
        if self.previous is not None:
            current.verdict, current.exit_code = self.previous.verdict, self.previous.exit_code
        return [current]

    def on_record(self, record: Record) -> None:
        with self._lock:
            self.state.apply(record)
            self.state.active = self.state.phase != "end"

    async def _follow_history(self) -> None:
        while not self._stopped.is_set():
            self._read_history()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.history_every)

    def _read_history(self) -> None:
        if self._history is None:
            return
        ops = self._history.read()
        with self._lock:
            for op in ops:
                self.state.apply_op(op)

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            await self._task
        self._read_history()
        with self._lock:
            self.state.active = False
        if self._server is not None:
            server = self._server
            await asyncio.to_thread(server.shutdown)
            server.server_close()
            self._server = None


def _copy(v: Any) -> Any:
    """A snapshot the scrape thread can read while the loop keeps updating the original."""
    if isinstance(v, Histogram):
        return Histogram(v.bounds, list(v.counts), v.total)
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v
