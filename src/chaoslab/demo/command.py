"""``chaoslab demo``: seed 004's demonstration against the reference exchange, in about five minutes.

1. A baseline CPU flamegraph of the trading API (py-spy, from outside the process).
2. The network partition between the API and PostgreSQL (experiment 02), with eBPF watching TCP
   retransmissions, connection states and resets, and Prometheus (the stack's own) answering the
   PromQL probes of its hypothesis: the order rate and the API's p99.
3. The CPU throttle of the API (experiment 04), with eBPF measuring the scheduler's run-queue
   wait of the API's threads and a flamegraph per phase.
4. A summary: key findings, recommendations and each report.

The exchange (with Prometheus) is brought up first and taken down at the end unless it already
was up. ``--quick`` shrinks every window (about a minute once the stack is up; the tests use it).
A verdict either way is the demo working: a violated hypothesis is a weakness found.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..errors import VERDICT_CODES, ChaoslabError
from ..records import Record
from .platform import EXCHANGE, ComposePlatform, LocalPlatform, Platform
from .progress import Progress, Step
from .summary import Outcome, experiment_outcome, render

TRACEPOINTS = ("tcp:tcp_retransmit_skb", "sock:inet_sock_set_state", "tcp:tcp_send_reset",
               "sched:sched_wakeup", "sched:sched_switch")


@dataclass(frozen=True)
class DemoExperiment:
    file: str
    title: str
    observe: dict[str, Any]
    full: dict[str, str]
    quick: dict[str, str]
    prom: dict[str, str] = field(default_factory=dict)
    """PromQL probes to show in the summary, and their unit."""


PARTITION = DemoExperiment(
    "02-network-partition.yaml", "Network partition API <-> PostgreSQL, eBPF on TCP, Prometheus probes",
    {"ebpf": ["retransmits", "tcp_state", "resets"]},
    {"FAULT_AT": "15s", "FAULT_FOR": "30s", "RECOVERY": "30s"},
    {"FAULT_AT": "6s", "FAULT_FOR": "8s", "RECOVERY": "10s"},
    {"order_rate": "orders/s", "p99_latency": "s"},
)
THROTTLE = DemoExperiment(
    "04-cpu-throttling.yaml", "CPU throttle of the API, eBPF run-queue wait, a flamegraph per phase",
    {"ebpf": ["sched_wait"], "profile": {"target": "api", "phases": ["baseline", "fault", "recovery"], "gil": True}},
    {"FAULT_AT": "15s", "FAULT_FOR": "30s", "RECOVERY": "20s"},
    {"FAULT_AT": "6s", "FAULT_FOR": "8s", "RECOVERY": "8s"},
)
BASELINE_PROFILE = {False: 30.0, True: 5.0}
SETTLE = {False: 60.0, True: 30.0}
# Around an experiment's own timeline: observers starting (bpftrace compiles), the final read.
OVERHEAD = 15.0


def _partition_vars() -> dict[str, str]:
    """The kernel partition needs root (nftables); otherwise the proxy cuts the same link."""
    return {} if os.geteuid() == 0 else {"PARTITION": "network.blackhole", "SIDE": "link"}


def _load(exp: DemoExperiment, quick: bool, platform: Platform) -> Any:
    from ..experiment.loader import load_experiment

    variables = dict(exp.quick if quick else exp.full)
    if exp is PARTITION:
        variables.update(_partition_vars())
    loaded = load_experiment(EXCHANGE / "experiments" / exp.file, variables, overlay=platform.overlay(variables))
    # The demo observes more than the catalog's runs do (their time stays as it is).
    loaded.experiment.observe = {**loaded.experiment.observe, **exp.observe}
    return loaded


def _planned(loaded: Any) -> float:
    return float(loaded.experiment.longest() + OVERHEAD)


def ebpf_check() -> str | None:
    """Why eBPF cannot run here (None when it can), after checking the tracepoints the demo uses."""
    from ..observe.capability import missing_tracepoints, require_ebpf

    try:
        bpftrace = require_ebpf()
    except ChaoslabError as exc:
        return str(exc)
    missing = missing_tracepoints(bpftrace, list(TRACEPOINTS))
    return f"the kernel lacks the tracepoint(s) {', '.join(missing)}" if missing else None


def baseline_profile(platform: Platform, seconds: float, out: Path, progress: Progress) -> Outcome:
    from ..observe.profile import Recording, summary

    outcome = Outcome("Baseline CPU flamegraph of the trading API")
    try:
        rec = Recording.start(platform.api_pid(), out, rate=100, duration=seconds, gil=True, label="baseline")
    except (ChaoslabError, OSError, click.ClickException) as exc:
        outcome.lines.append(f"No flamegraph: {exc} (the demo goes on without it).")
        return outcome
    try:
        with progress.ticking(f"py-spy is sampling the trading API (pid {rec.pid}) for {seconds:.0f} s"):
            error = rec.wait(timeout=seconds + 30)
    finally:
        rec.interrupt()
        if rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()
    if error is not None:
        outcome.lines.append(f"No flamegraph: {error} (the demo goes on without it).")
        return outcome
    info = summary(out, top=5)
    hot = ", ".join(f"{h['function']} ({h['share']:.0%})" for h in info["hot"])
    outcome.lines.append(f"{info['samples']} samples in {seconds:.0f} s under the order flow; hottest: {hot}.")
    outcome.report = out
    return outcome


def settle(progress: Progress, timeout: float) -> str:
    """Wait until the API says healthy with an empty spool, so one experiment's aftermath does not
    become the next one's baseline; what happened, in a sentence."""
    import httpx

    url = f"http://127.0.0.1:{os.environ.get('EXCHANGE_API_PORT', '8080')}/health"
    t0 = time.monotonic()
    last = "no answer"
    with progress.ticking("waiting for the API to be healthy with an empty spool"):
        while True:
            try:
                body = httpx.get(url, timeout=2).json()
                last = f"{body.get('status')}, spool {body.get('spool_depth')}, database {body.get('database')}"
                if body.get("status") == "healthy" and not body.get("spool_depth"):
                    return f"After the run the API was healthy with an empty spool within {time.monotonic() - t0:.0f} s."
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                last = f"no answer ({type(exc).__name__})"
            if time.monotonic() - t0 > timeout:
                return (f"After the run the API was still not healthy {timeout:.0f} s later ({last}); "
                        "the next step starts anyway.")
            time.sleep(1)


def _run(exp: DemoExperiment, loaded: Any, runs_dir: Path, progress: Progress) -> Any:
    from ..cli.console import make_console
    from ..runner.run import RunOptions, run_experiment

    console = make_console(loaded.experiment)

    def listen(record: Record) -> None:
        console.on_record(record)
        progress.on_record(record)

    opts = RunOptions(run_root=runs_dir, listeners=[listen], print=console.print_line)
    with console:
        result = run_experiment(loaded, opts)
    console.verdict(result)
    return result


@click.command()
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True, help="Where the run directories and their reports go.")
@click.option("--quick", is_flag=True, help="Fault windows of a few seconds (about a minute once the stack is up).")
@click.option("--compose", is_flag=True, help="Run against the Compose exchange (examples/exchange/compose.yaml).")
@click.option("--keep-stack", is_flag=True, help="Leave the exchange running afterwards.")
def demo(runs_dir: Path, quick: bool, compose: bool, keep_stack: bool) -> None:
    """Seed 004's demo: a baseline flamegraph, a partition under eBPF and Prometheus, a CPU
    throttle with per-phase flamegraphs, then a summary with findings and reports."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    platform: Platform = ComposePlatform(runs_dir) if compose else LocalPlatform(runs_dir)
    demo_dir = runs_dir / time.strftime("demo-%Y%m%d-%H%M%S")
    demo_dir.mkdir(parents=True, exist_ok=True)
    loaded = {exp.file: _load(exp, quick, platform) for exp in (PARTITION, THROTTLE)}
    progress = Progress([
        Step("bringing the exchange up (PostgreSQL, Redis, proxy, API, nginx, simulators, Prometheus)",
             5.0 if platform.was_up else 60.0),
        Step("baseline CPU flamegraph of the trading API", BASELINE_PROFILE[quick] + 3),
        Step(PARTITION.title, _planned(loaded[PARTITION.file])),
        Step(THROTTLE.title, _planned(loaded[THROTTLE.file])),
        Step("summary", 0.0 if platform.was_up or keep_stack else 15.0),
    ])
    outcomes: list[Outcome] = []
    try:
        progress.begin(0)
        with progress.ticking("waiting for every service to be healthy"):
            platform.up()
        why_not = ebpf_check()
        progress.say("eBPF: " + (f"CANNOT run here: {why_not}; the experiments run without it" if why_not else
                                 "bpftrace on tracepoints " + ", ".join(TRACEPOINTS)))
        progress.begin(1)
        outcomes.append(baseline_profile(platform, BASELINE_PROFILE[quick], demo_dir / "baseline-flamegraph.svg",
                                         progress))
        for i, exp in enumerate((PARTITION, THROTTLE), start=2):
            progress.begin(i)
            result = _run(exp, loaded[exp.file], runs_dir, progress)
            outcomes.append(experiment_outcome(exp.title, result, exp.prom))
            if exp is PARTITION:
                outcomes[-1].lines.append(settle(progress, SETTLE[quick]))
                progress.say(outcomes[-1].lines[-1])
        progress.begin(4)
    finally:
        if platform.was_up or keep_stack:
            click.echo(f"The exchange stays up: {platform.describe()}")
        else:
            progress.say("taking the exchange down")
            platform.down()
    lines = render(outcomes, progress.elapsed(), platform.name)
    (demo_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    click.secho("\n== " + lines[0], bold=True)
    click.echo("\n".join(lines[1:]))
    click.echo(f"This summary: {demo_dir / 'summary.txt'}. Open report.html in each run directory for the charts.")
    click.echo(f"Or in a browser: chaoslab serve --runs-dir {runs_dir} --experiments examples/exchange/experiments"
               " then open http://127.0.0.1:8440/ (docs/console.md)")
    # An invalid run (a machine too busy for the load's schedule) still showed everything; a run
    # that could not inject, revert or finish did not.
    if any(o.exit_code is not None and o.exit_code not in VERDICT_CODES and o.valid for o in outcomes):
        raise click.ClickException("an experiment did not reach a verdict (see above)")
