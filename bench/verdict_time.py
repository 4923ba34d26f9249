"""Time to verdict (issue 29.1): the exchange's catalog with fixed phases, and with phases that end
on evidence, run in one session; wall time and every verdict and figure side by side.

    .venv/bin/python bench/verdict_time.py                    # the whole catalog, both ways
    .venv/bin/python bench/verdict_time.py --only 01,08       # some of it
    .venv/bin/python bench/verdict_time.py --out verdict.json # and keep the figures

The catalog files are not changed. The evidence form is an overlay this bench applies as each
file is loaded (after its ${...} are substituted): the first step's offset X becomes `baseline:
{until: stable, min: min(X, --baseline-min), max: X}`, every step's `at` loses X (offsets count
from the baseline's end, docs/experiment-format.md "Phases"), and `recovery: R` becomes
`recovery: {until: steady, max: R, min: --recovery-min}`. Everything else (faults, durations,
load, probes, hypothesis, final read) is as written. The two forms of an experiment run one after
the other, with the suite's pause and readiness check before each, so machine noise hits both
alike; the wall time of each form counts its runs and its waits.

Needs root and the exchange's fixed ports (8080, 5433, 8474...): an exchange already up is used
and left up; otherwise this bench brings it up before the first run (outside the timings) and
takes it down at the end, whatever happens. Run from a checkout whose .venv exists (the stack
file starts the exchange with ../../.venv/bin/python).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslab.experiment.loader import load_experiment
from chaoslab.experiment.overlay import Overlay
from chaoslab.runner.run import RunOptions, run_experiment
from chaoslab.runner.suite import _wait_ready, load_suite
from chaoslab.source import Document
from chaoslab.stack import Stack
from chaoslab.units import parse_duration

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "examples" / "exchange" / "suite.yaml"
STACK = ROOT / "examples" / "exchange" / "stack.yaml"
PORTS = (8000, 8080, 8081, 8082, 8474, 5433, 6380, 15433, 16380, 9090, 9464)  # tests/catalog/conftest.py

#: Figures compared for every experiment (beside every hypothesis line).
FIGURES = ("time_to_recovery", "time_to_recovery.exact", "impact_onset", "detection_time",
           "availability.baseline", "availability.fault", "availability.recovery",
           "latency.p99.baseline", "latency.p99.fault", "latency.p99.recovery",
           "lost_writes", "duplicates")


@dataclass
class EvidenceOverlay(Overlay):
    """The catalog's fixed phases rewritten into the evidence forms, on the loaded document."""

    baseline_min: float = 10.0
    recovery_min: float = 1.0

    def apply(self, doc: Document) -> None:
        super().apply(doc)
        data = doc.data
        steps = data.get("method") or []
        first = min(parse_duration(s.get("at", 0)) for s in steps)
        for s in steps:
            s["at"] = f"{parse_duration(s.get('at', 0)) - first:.6g}s"
        data["baseline"] = {"until": "stable", "min": f"{min(first, self.baseline_min):g}s", "max": f"{first:g}s"}
        recovery = parse_duration(data.get("recovery", 10.0))
        data["recovery"] = {"until": "steady", "max": f"{recovery:g}s", "min": f"{self.recovery_min:g}s"}


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "pass" if v else "FAIL"
    if isinstance(v, float):
        if key.startswith(("availability", "error_rate", "probe.")) and "latency" not in key:
            return f"{v:.4f}"
        return f"{v:.3f}"
    return str(v)


def run_one(path: Path, variables: dict[str, str], overlay: Overlay | None, runs: Path,
            ready: Any, grace: float, pause: float) -> dict[str, Any]:
    t0 = time.monotonic()
    time.sleep(pause)
    if ready is not None:
        not_ready = asyncio.run(_wait_ready(ready, grace))
        if not_ready is not None:
            print(f"  not ready after {grace:g}s: {not_ready}", file=sys.stderr)
    t_run = time.monotonic()
    loaded = load_experiment(path, variables, overlay)
    result = run_experiment(loaded, RunOptions(run_root=runs, reports=("json",), print=lambda s: None))
    end = time.monotonic()
    a = result.analysis or {}
    ends = [r for r in _journal(result.run_dir) if r.get("kind") == "phase_end"]
    return {
        "outcome": result.outcome, "exit_code": int(result.exit_code), "run_dir": str(result.run_dir),
        "wall": end - t0, "run": end - t_run,
        "phases": (a.get("phases") or {}).get("durations"),
        "metrics": {k: (a.get("metrics") or {}).get(k) for k in FIGURES},
        "hypothesis": {h["name"]: {"value": h["value"], "passed": h["passed"]} for h in a.get("hypothesis") or []},
        "phase_ends": [r.get("message") for r in ends],
    }


def _journal(run_dir: Path | None) -> list[dict[str, Any]]:
    if run_dir is None or not (run_dir / "journal.jsonl").exists():
        return []
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated prefixes of the catalog's files (01,08)")
    ap.add_argument("--var", action="append", default=[], metavar="KEY=VALUE", help="for both forms")
    ap.add_argument("--baseline-min", type=parse_duration, default=10.0)
    ap.add_argument("--recovery-min", type=parse_duration, default=1.0)
    ap.add_argument("--runs-dir", type=Path, default=Path("bench-verdict-runs"))
    ap.add_argument("--out", type=Path, help="write every figure as JSON")
    args = ap.parse_args()
    variables = dict(v.split("=", 1) for v in args.var)

    stack = Stack.load(STACK)
    was_up = stack.is_up()
    if not was_up and (busy := [p for p in PORTS if port_taken(p)]):
        print(f"the exchange's fixed ports {busy} are held by something else: not running", file=sys.stderr)
        return 2
    suite = load_suite(SUITE, variables)
    spec = suite.suite
    wanted = [p for p in args.only.split(",") if p]
    entries = [(e, x.path) for e, x in suite.experiments
               if not wanted or any(Path(e.path).name.startswith(w) for w in wanted)]
    evidence = EvidenceOverlay(SUITE, baseline_min=args.baseline_min, recovery_min=args.recovery_min)
    results: list[dict[str, Any]] = []
    try:
        # up before the clock starts: bringing the stack up is neither form's time
        stack.up()
        for i, (entry, path) in enumerate(entries):
            row: dict[str, Any] = {"experiment": Path(entry.path).name}
            for form, overlay in (("fixed", None), ("evidence", evidence)):
                first = i == 0 and form == "fixed"
                print(f"[{i + 1}/{len(entries)}] {row['experiment']} ({form})", flush=True)
                row[form] = run_one(path, variables, overlay, args.runs_dir / form,
                                    None if first else spec.ready, spec.grace, 0.0 if first else spec.pause)
                print(f"    {row[form]['outcome']} in {row[form]['run']:.1f} s; "
                      + "; ".join(m for m in row[form]["phase_ends"] if m), flush=True)
            results.append(row)
    finally:
        if not was_up:
            stack.down()
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    same = all(r["fixed"]["outcome"] == r["evidence"]["outcome"] for r in results)
    return 0 if same else 1


def report(results: list[dict[str, Any]]) -> None:
    fixed = sum(r["fixed"]["wall"] for r in results)
    early = sum(r["evidence"]["wall"] for r in results)
    fixed_run = sum(r["fixed"]["run"] for r in results)
    early_run = sum(r["evidence"]["run"] for r in results)
    print()
    print("| experiment | fixed: verdict, run s | evidence: verdict, run s | same verdict |")
    print("|---|---|---|---|")
    for r in results:
        f, e = r["fixed"], r["evidence"]
        print(f"| {r['experiment']} | {f['outcome']}, {f['run']:.1f} | {e['outcome']}, {e['run']:.1f} | "
              f"{'yes' if f['outcome'] == e['outcome'] else 'NO'} |")
    print(f"\nwall time (runs, pauses and readiness waits): fixed {fixed:.0f} s, evidence {early:.0f} s, "
          f"{fixed / early:.2f}x faster" if early else "")
    print(f"runs alone: fixed {fixed_run:.0f} s, evidence {early_run:.0f} s, "
          f"{fixed_run / early_run:.2f}x" if early_run else "")
    print("\n| experiment | figure | fixed | evidence |")
    print("|---|---|---|---|")
    for r in results:
        f, e = r["fixed"], r["evidence"]
        for key in FIGURES:
            print(f"| {r['experiment']} | {key} | {_fmt(key, f['metrics'][key])} | {_fmt(key, e['metrics'][key])} |")
        for name in sorted(set(f["hypothesis"]) | set(e["hypothesis"])):
            fh, eh = f["hypothesis"].get(name, {}), e["hypothesis"].get(name, {})
            print(f"| {r['experiment']} | hypothesis {name} | {_fmt(name, fh.get('value'))} "
                  f"{_fmt(name, fh.get('passed'))} | {_fmt(name, eh.get('value'))} {_fmt(name, eh.get('passed'))} |")
        for phase in ("baseline", "fault", "recovery"):
            print(f"| {r['experiment']} | {phase} phase, s | {_fmt('', (f['phases'] or {}).get(phase))} | "
                  f"{_fmt('', (e['phases'] or {}).get(phase))} |")


if __name__ == "__main__":
    sys.exit(main())
