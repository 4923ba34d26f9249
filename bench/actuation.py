"""How long a process fault takes to act: from the call until the effect shows in /proc.

kill    until /proc/PID/stat says Z (or the pid is gone)
pause   until it says T (stopped)
resume  until it no longer says T

Each over N repetitions (default 200), chaoslab's fault classes beside Chaos Toolkit running the
same signal as a `process` activity (chaoslib's run_activity, in its own venv from PyPI).
Target: p99 inject and revert at most 5 ms.

    .venv/bin/python bench/actuation.py [--reps 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ctk import ctk_python, ctk_version

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

WAIT_STATE = '''
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            t = f.read()
        return t[t.rindex(")") + 2]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"

def wait(pid, pred):
    while not pred(state(pid)):
        pass
'''

CTK_SCRIPT = WAIT_STATE + '''
import json, subprocess, sys, time, logging
logging.disable(logging.CRITICAL)
from chaoslib.activity import run_activity
reps = int(sys.argv[1])
def act(args):
    return {"type": "action", "name": "signal", "provider": {"type": "process", "path": "kill", "arguments": args}}
out = {"kill": [], "pause": [], "resume": []}
victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
for _ in range(reps):
    t = time.perf_counter(); run_activity(act(f"-STOP {victim.pid}"), {}, {}); wait(victim.pid, lambda s: s == "T")
    out["pause"].append(time.perf_counter() - t)
    t = time.perf_counter(); run_activity(act(f"-CONT {victim.pid}"), {}, {}); wait(victim.pid, lambda s: s != "T")
    out["resume"].append(time.perf_counter() - t)
victim.kill(); victim.wait()
for _ in range(reps):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    t = time.perf_counter(); run_activity(act(f"-KILL {p.pid}"), {}, {}); wait(p.pid, lambda s: s in ("Z", "gone"))
    out["kill"].append(time.perf_counter() - t)
    p.wait()
print(json.dumps(out))
'''


def chaoslab_figures(reps: int) -> dict[str, list[float]]:
    from chaoslab import faults
    from chaoslab.faults.base import NoParams
    from chaoslab.faults.process import PauseParams
    from chaoslab.targets import TargetSpec, resolve

    ns: dict[str, object] = {}
    exec(WAIT_STATE, ns)
    wait = ns["wait"]
    out: dict[str, list[float]] = {"kill": [], "pause": [], "resume": []}
    victim = subprocess.Popen(SLEEPER)
    target = resolve("v", TargetSpec(pid=victim.pid))
    pause = faults.get("process.pause")
    for _ in range(reps):
        fault = pause(PauseParams(method="signal"), target)
        t = time.perf_counter()
        fault.inject()
        wait(victim.pid, lambda s: s == "T")  # type: ignore[operator]
        out["pause"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fault.revert()
        wait(victim.pid, lambda s: s != "T")  # type: ignore[operator]
        out["resume"].append(time.perf_counter() - t)
    victim.kill()
    victim.wait()
    kill = faults.get("process.kill")
    for _ in range(reps):
        p = subprocess.Popen(SLEEPER)
        fault = kill(NoParams(), resolve("v", TargetSpec(pid=p.pid)))
        t = time.perf_counter()
        fault.inject()
        wait(p.pid, lambda s: s in ("Z", "gone"))  # type: ignore[operator]
        out["kill"].append(time.perf_counter() - t)
        p.wait()
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    ours = chaoslab_figures(args.reps)
    ctk = json.loads(subprocess.run([str(ctk_python()), "-c", CTK_SCRIPT, str(args.reps)],
                                    capture_output=True, text=True, check=True).stdout)
    print(f"actuation latency, call -> effect in /proc, {args.reps} repetitions; Chaos Toolkit = {ctk_version()}")
    print(f"{'':8}{'chaoslab p50':>14}{'p99':>10}{'ChaosToolkit p50':>18}{'p99':>10}{'ratio p50':>11}")
    ok = True
    for kind in ("kill", "pause", "resume"):
        a50, a99 = pct(ours[kind], 50) * 1e3, pct(ours[kind], 99) * 1e3
        c50, c99 = pct(ctk[kind], 50) * 1e3, pct(ctk[kind], 99) * 1e3
        print(f"{kind:8}{a50:>12.3f}ms{a99:>8.3f}ms{c50:>16.3f}ms{c99:>8.3f}ms{c50 / a50:>10.0f}x")
        ok &= a99 <= 5.0
    print(f"target p99 <= 5 ms for inject and revert: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
