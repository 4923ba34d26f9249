"""How long `chaoslab stack up` takes for PostgreSQL + Redis + nginx from an existing data dir.

Prints, for N warm runs (the data directory already initialised by a first, cold run):
- the CLI's wall time (`python -m chaoslab.stack up FILE`, interpreter start included),
- the supervisor's own figure (its "starting" event to its "up" event),
- the critical path of the services themselves (each one's start -> healthy, in dependency
  order), and the ratio of the CLI time to it: what the stack machinery adds on top.

    .venv/bin/python bench/stack_up.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STACK = """
name: bench
services:
  db:
    postgres: {{port: {pg}}}
  cache:
    redis: {{port: {redis}}}
  edge:
    nginx:
      port: {edge}
      upstreams: {{db: ["127.0.0.1:{pg}"]}}
      routes: [{{path: /, upstream: db, rate: 100/s}}]
    depends_on: [db, cache]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "chaoslab.stack", *args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stack {args[0]} failed: {proc.stderr.strip()}")
    return time.perf_counter() - t0


def run_figures(events: list[dict[str, Any]], since: float) -> tuple[float, float]:
    ev = [e for e in events if e["time"] >= since]
    t_start = next(e["time"] for e in ev if e["event"] == "stack" and e["status"] == "starting")
    t_up = next(e["time"] for e in ev if e["event"] == "stack" and e["status"] == "up")
    started = {e["service"]: e["time"] for e in ev if e["event"] == "start"}
    healthy = {e["service"]: e["time"] for e in ev if e["event"] == "health" and e["status"] == "healthy"}
    own = {s: healthy[s] - started[s] for s in started}
    critical = max(own["db"], own["cache"]) + own["edge"]
    return t_up - t_start, critical


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="chaoslab-bench-stack-", dir="/tmp"))
    d.chmod(0o755)
    path = d / "stack.yaml"
    path.write_text(STACK.format(pg=free_port(), redis=free_port(), edge=free_port()))
    events_file = d / ".chaoslab" / "stacks" / "bench" / "events.jsonl"
    try:
        cold = cli("up", str(path))
        cli("down", str(path))
        walls, sups, crits = [], [], []
        for _ in range(args.runs):
            since = time.time()
            walls.append(cli("up", str(path)))
            events = [json.loads(ln) for ln in events_file.read_text().splitlines()]
            sup, crit = run_figures(events, since)
            sups.append(sup)
            crits.append(crit)
            cli("down", str(path))
    finally:
        subprocess.run([sys.executable, "-m", "chaoslab.stack", "down", str(path)], capture_output=True, check=False)
        shutil.rmtree(d, ignore_errors=True)
    med = statistics.median
    print(f"stack up, Postgres + Redis + nginx, {args.runs} warm runs (medians):")
    print(f"  cold first up (initdb included)     {cold:6.2f} s")
    print(f"  CLI wall time, existing data dir    {med(walls):6.2f} s   (min {min(walls):.2f}, max {max(walls):.2f})")
    print(f"  supervisor: starting -> up          {med(sups):6.2f} s")
    print(f"  services' own start->healthy path   {med(crits):6.2f} s")
    print(f"  ratio CLI wall / services' own path {med(walls) / med(crits):6.2f}x")


if __name__ == "__main__":
    main()
