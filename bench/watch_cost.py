"""What watching costs (issue 29.4): chaoslab's own CPU during the phases and its start-up, each
beside its goal, measured by chaoslab itself in one run.

Against nginx with keep-alive (started here as in bench/loadgen.py: 1 worker, a small static file
on 127.0.0.1), the same experiment (an HTTP probe every ``--every``, a ``command.run`` of ``true``
as the only step, fixed baseline and recovery) runs as ``chaoslab run`` three times: with no load
(probes and bookkeeping only: the fixed cost, as a share of one core), at 1,000/s and at 2,000/s
(one load worker: the runner's own loop). The figures are read from each run's analysis
(``summary.json``, docs/metrics.md "What watching cost"):

- fixed cost: ``chaoslab_cpu_share`` of the run without load; goal at most 1% of one core;
- per operation: the slope between the two loaded runs, (CPU at 2,000/s - CPU at 1,000/s) /
  (operations at 2,000/s - operations at 1,000/s); goal at most 20 µs;
- start-up: from the bench spawning ``chaoslab run`` to its first probe sample (the journal's
  wall clock), the median of the runs, measured the same way for every tree (chaoslab's own
  ``chaoslab_startup`` is printed per run); goal at most 0.5 s. Beside it the CPU the runner had
  used at the baseline mark, and the CPU of a whole short probe-only run (start-up + 1 s of
  phases: like for like between trees that start their probes on either side of the mark).

Then one more short run under ``python -X importtime``, cut where the first probe sample reaches
the journal, says where start-up goes: the top imports by cumulative time and by package.

``--before SRC`` runs every configuration also with another checkout's ``src`` first on the path
(interleaved, so machine noise hits both alike) and prints the ratios: how a change moved the
figures, in one run. ``git archive REV src | tar -x -C /tmp/before`` makes one.

    PYTHONPATH=src .venv/bin/python bench/watch_cost.py [--seconds 10] [--rates 0,1000,2000]
        [--every 250ms] [--before /tmp/before/src] [--nice 19]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import start_nginx

HERE = Path(__file__).resolve().parent.parent
GOAL_SHARE = 0.01
GOAL_PER_OP = 20e-6
GOAL_STARTUP = 0.5

EXPERIMENT = """\
title: watch cost {label}
probes:
  nginx:
    http: {{url: "{url}"}}
    every: {every}
    timeout: 1s
method:
  - {{fault: command.run, at: {baseline}s, argv: ["true"]}}
recovery: {recovery}s
max_duration: 5m
"""
LOAD = """\
load:
  workers: 1
  http: {{url: "{url}", rate: {rate}/s, timeout: 2s}}
"""

# A child that runs `chaoslab run` and writes a marker to stderr once the first probe sample is in
# the journal, so the -X importtime lines before it are what start-up imported.
MARKED_RUN = textwrap.dedent("""
    import os, sys, threading, time
    runs = sys.argv[1]
    def mark():
        while True:
            for d in os.listdir(runs) if os.path.isdir(runs) else ():
                try:
                    with open(os.path.join(runs, d, "journal.jsonl"), "rb") as f:
                        if b'"type":"sample"' in f.read():
                            sys.stderr.write("-- first sample --\\n"); sys.stderr.flush(); return
                except OSError:
                    pass
            time.sleep(0.005)
    threading.Thread(target=mark, daemon=True).start()
    from chaoslab.cli.main import main
    main(["run", sys.argv[2], "--runs-dir", runs, "--report", "json", "--quiet"])
""")


def chaoslab_run(src: Path, experiment: Path, runs_dir: Path, nice: int) -> dict[str, Any]:
    """Run the experiment with ``src`` first on the path; its analysis's metrics."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = ["nice", "-n", str(nice), "ionice", "-c3", sys.executable, "-m", "chaoslab", "run", str(experiment),
           "--runs-dir", str(runs_dir), "--report", "json", "--quiet"]
    spawned = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    summaries = sorted(runs_dir.glob("*/summary.json"))
    if not summaries:
        raise RuntimeError(f"no run directory: exit {proc.returncode}\n{proc.stderr}")
    summary = json.loads(summaries[-1].read_text())
    if summary["outcome"] not in ("held", "violated", "invalid"):
        raise RuntimeError(f"run {summary['outcome']}: {summary['reason']}\n{proc.stderr}")
    metrics: dict[str, Any] = summary["analysis"]["metrics"]
    # invalid = the generator fell behind on a busy machine: what it spent is still measured, but
    # the rate it was asked for was not what it sent, so say so beside the figures
    metrics["invalid"] = summary["reason"] if summary["outcome"] == "invalid" else None
    # the CPU the runner had used when the baseline began: start-up's cost, which a busy machine
    # disturbs far less than its wall time
    # and when the recovery ended: start-up + phases, like for like between two trees whatever
    # one of them does before or after the baseline mark
    # start-up as the bench sees it, the same for every tree: from the spawn to the first sample
    # (chaoslab's own chaoslab_startup took psutil's create_time as the start before 606370f,
    # up to 1 s early)
    started_at = None
    for line in (summaries[-1].parent / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "run":
            started_at = rec["started_at"]
        if rec["type"] == "sample" and "spawn_to_sample" not in metrics and started_at is not None:
            metrics["spawn_to_sample"] = started_at + rec["t"] - spawned
        if rec["type"] == "phase" and rec["name"] == "baseline":
            metrics["startup_cpu"] = rec.get("cpu")
        elif rec["type"] == "phase" and rec["name"] not in ("fault", "recovery"):
            metrics["end_cpu"] = rec.get("cpu")
    return metrics


def importtime(src: Path, experiment: Path, runs_dir: Path, nice: int) -> list[tuple[int, int, int, str]]:
    """(depth, self µs, cumulative µs, module) of each import before the first probe sample."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = ["nice", "-n", str(nice), "ionice", "-c3", sys.executable, "-X", "importtime", "-c", MARKED_RUN,
           str(runs_dir), str(experiment)]
    err = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("-- first sample --"):
            break
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((len(m.group(3)) // 2, int(m.group(1)), int(m.group(2)), m.group(4)))
    return rows


def summarize_imports(rows: list[tuple[int, int, int, str]], top: int) -> None:
    total = sum(r[1] for r in rows)
    print(f"\nImports before the first probe sample (python -X importtime, one run): {len(rows)} modules, "
          f"{total / 1e6:.2f} s of import time in all (importtime itself slows them)")
    print("  top-level imports by cumulative time:")
    for _, _, cum, name in sorted((r for r in rows if r[0] == 0), key=lambda r: -r[2])[:top]:
        print(f"    {cum / 1e3:8.1f} ms  {name}")
    by_package: dict[str, int] = defaultdict(int)
    for _, self_us, _, name in rows:
        parts = name.split(".")
        by_package[".".join(parts[:2]) if parts[0] == "chaoslab" else parts[0]] += self_us
    print("  self time by package (chaoslab by subpackage):")
    for name, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {us / 1e3:8.1f} ms  {name}")


def figures(runs: dict[int, dict[str, Any]], short: list[dict[str, Any]]) -> dict[str, float | None]:
    """Fixed share, per-operation slope and start-up (median of all runs, the short ones too) of one tree."""
    out: dict[str, float | None] = {}
    out["share"] = runs[0]["chaoslab_cpu_share"] if 0 in runs else None
    loaded = sorted(r for r in runs if r > 0)
    if len(loaded) >= 2:
        lo, hi = runs[loaded[0]], runs[loaded[-1]]
        d_ops = hi["operations"] - lo["operations"]
        out["per_op"] = (hi["chaoslab_cpu"] - lo["chaoslab_cpu"]) / d_ops if d_ops > 0 else None
    else:
        out["per_op"] = None
    startups = [r["spawn_to_sample"] for r in [*runs.values(), *short] if r.get("spawn_to_sample") is not None]
    out["startup"] = statistics.median(startups) if startups else None
    cpus = [r["startup_cpu"] for r in [*runs.values(), *short] if r.get("startup_cpu") is not None]
    out["startup_cpu"] = statistics.median(cpus) if cpus else None
    ends = [r["end_cpu"] for r in short if r.get("end_cpu") is not None]
    out["short_cpu"] = statistics.median(ends) if ends else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="baseline + recovery of each run (half each)")
    ap.add_argument("--rates", default="0,1000,2000", help="load rates to run; 0 = probes only")
    ap.add_argument("--every", default="250ms", help="the probe's interval (the exchange catalog's)")
    ap.add_argument("--before", type=Path, default=None, help="another checkout's src, run beside this one")
    ap.add_argument("--nice", type=int, default=19, help="niceness of every chaoslab run (the machine is shared)")
    ap.add_argument("--top", type=int, default=12, help="rows of the import summary")
    ap.add_argument("--startups", type=int, default=3, help="short probe-only runs per tree, for start-up samples")
    ap.add_argument("--no-importtime", action="store_true")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    trees = {"this": HERE / "src"}
    if args.before is not None:
        trees = {"before": args.before.resolve(), **trees}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench still stops its nginx
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, chaoslab runs at nice {args.nice}; "
          f"probe every {args.every}, {args.seconds:g} s of phases per run")
    results: dict[str, dict[int, dict[str, Any]]] = {label: {} for label in trees}
    shorts: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    with tempfile.TemporaryDirectory(prefix="chaoslab-bench-watch-") as tmp_name:
        tmp = Path(tmp_name)
        nginx_dir = tmp / "nginx"
        nginx_dir.mkdir()
        proc, url = start_nginx(nginx_dir)
        try:
            half = args.seconds / 2
            for rate in rates:
                text = EXPERIMENT.format(label=rate, url=url, every=args.every, baseline=half, recovery=half)
                if rate:
                    text += LOAD.format(url=url, rate=rate)
                exp = tmp / f"rate-{rate}.yaml"
                exp.write_text(text)
                for label, src in trees.items():  # interleaved: noise hits both trees alike
                    m = chaoslab_run(src, exp, tmp / f"runs-{label}-{rate}", args.nice)
                    results[label][rate] = m
                    per_op = m.get("chaoslab_cpu_per_op")
                    print(f"  {label:>6} {rate:>5}/s: {m['operations'] if rate else 0:>6} ops, CPU {m['chaoslab_cpu']:.3f} s "
                          f"= {m['chaoslab_cpu_share'] * 100:.2f}% of one core"
                          + (f", {per_op * 1e6:.1f} µs/op" if per_op else "")
                          + f" (recovery alone {m['chaoslab_cpu_share.recovery'] * 100:.2f}%), "
                          f"start-up {m['spawn_to_sample']:.3f} s ({m['startup_cpu']:.3f} s of CPU; "
                          f"chaoslab_startup {m['chaoslab_startup']:.3f} s)"
                          + (f"; INVALID: {m['invalid']}" if m["invalid"] else ""), flush=True)
            short = tmp / "short.yaml"
            short.write_text(EXPERIMENT.format(label="short", url=url, every=args.every, baseline=0.5, recovery=0.5))
            for i in range(args.startups):  # more start-up samples, from short probe-only runs
                for label, src in trees.items():
                    m = chaoslab_run(src, short, tmp / f"runs-short-{label}-{i}", args.nice)
                    shorts[label].append(m)
                    print(f"  {label:>6} short run: start-up {m['spawn_to_sample']:.3f} s, "
                          f"{m['startup_cpu']:.3f} s of CPU; {m['end_cpu']:.3f} s by the end of the phases", flush=True)
            if not args.no_importtime:
                imports = {label: importtime(src, short, tmp / f"runs-importtime-{label}", args.nice)
                           for label, src in trees.items()}
        finally:
            proc.terminate()
            proc.wait(10)

    figs = {label: figures(runs, shorts[label]) for label, runs in results.items()}
    print()
    labels = list(trees)
    head = "".join(f"{label:>12}" for label in labels)
    print(f"{'figure':36}{head}{'goal':>12}  ratio to goal" + ("   this/before" if len(labels) == 2 else ""))
    rows: list[tuple[str, str, float | None, Any]] = [
        ("fixed cost (share of one core)", "share", GOAL_SHARE, lambda v: f"{v * 100:.2f}%"),
        ("CPU per operation (slope)", "per_op", GOAL_PER_OP, lambda v: f"{v * 1e6:.1f} µs"),
        ("start-up, spawn to first sample (median)", "startup", GOAL_STARTUP, lambda v: f"{v:.3f} s"),
        ("  its CPU, to the baseline (median)", "startup_cpu", GOAL_STARTUP, lambda v: f"{v:.3f} s"),
        # start-up and 1 s of phases: like for like, whichever side of the mark a tree starts its probes
        ("CPU of a whole 1 s short run (median)", "short_cpu", None, lambda v: f"{v:.3f} s"),
    ]
    for title, key, goal, fmt in rows:
        vals = [figs[label][key] for label in labels]
        cells = "".join(f"{fmt(v) if v is not None else 'n/a':>12}" for v in vals)
        this = figs["this"][key]
        ratio = f"{this / goal:.2f}x {'met' if this <= goal else 'NOT met'}" if this is not None and goal else ""
        line = f"{title:36}{cells}{fmt(goal) if goal else '':>12}  {ratio:13}"
        if len(labels) == 2 and vals[0] and vals[1] is not None:
            line += f"   {vals[1] / vals[0]:.2f}"
        print(line)
    for rate in (r for r in rates if r):
        m = results["this"][rate]
        budget = GOAL_SHARE + GOAL_PER_OP * rate
        print(f"at {rate}/s: {m['chaoslab_cpu_share'] * 100:.2f}% of one core, budget 1% + 20 µs x {rate}/s = "
              f"{budget * 100:.1f}%  ({m['chaoslab_cpu_share'] / budget:.2f}x)")
    if not args.no_importtime:
        for label in labels:
            print(f"\n[{label}: {trees[label]}]", end="")
            summarize_imports(imports[label], args.top)
    print(json.dumps({label: {**figs[label], "runs": {rate: {k: v for k, v in m.items() if k.startswith("chaoslab")
                                                             or k in ("operations", "startup_cpu", "end_cpu", "spawn_to_sample")} for rate, m in runs.items()}}
                      for label, runs in results.items()}))


if __name__ == "__main__":
    main()
