"""`chaoslab --help` start-up time beside Chaos Toolkit's `chaos --help`, measured in one run.

    .venv/bin/python bench/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ctk import CTK_VENV, ctk_python, ctk_version

HERE = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache once
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    ctk_python()
    ours_cmd = [str(HERE / ".venv" / "bin" / "chaoslab"), "--help"]
    ctk_cmd = [str(CTK_VENV / "bin" / "chaos"), "--help"]
    ours, theirs = [], []
    for _ in range(args.runs):  # interleaved so machine noise hits both alike
        ours += timed(ours_cmd, 1)
        theirs += timed(ctk_cmd, 1)
    o, c = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
    print(f"--help start-up, median of {args.runs} interleaved runs; {ctk_version()}")
    print(f"  chaoslab --help   {o:7.1f} ms  (min {min(ours) * 1e3:.1f})")
    print(f"  chaos --help      {c:7.1f} ms  (min {min(theirs) * 1e3:.1f})")
    print(f"  ratio chaos/chaoslab: {c / o:.2f}x  -> {'no slower' if o <= c else 'SLOWER'}")


if __name__ == "__main__":
    main()
