"""How long a process fault takes to act: from the call until the effect shows in /proc.

kill    until /proc/PID/stat says Z (or the pid is gone)
pause   until it says T (stopped)
resume  until it no longer says T

Each over N repetitions (default 200), chaoslab's fault classes beside Chaos Toolkit running the
same signal as a `process` activity (chaoslib's run_activity, in its own venv from PyPI).
Target: p99 inject and revert at most 5 ms.

Containers (when Docker answers; scripts/docker.sh and scripts/images.sh): container.kill,
container.pause and its revert (unpause), each from the call until the kernel shows the effect
(the main process gone; the container's freezer cgroup FROZEN / THAWED), beside the `docker` CLI
doing the same to another container in the same run, over --container-reps (default 100).

    .venv/bin/python bench/actuation.py [--reps 200] [--container-reps 100] [--no-containers]
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


def _freezer(cid: str) -> str:
    with open(f"/sys/fs/cgroup/freezer/docker/{cid}/freezer.state") as f:
        return f.read().strip()


def _spin(pred: object, limit: float = 30.0) -> None:
    deadline = time.perf_counter() + limit
    while not pred():  # type: ignore[operator]
        if time.perf_counter() > deadline:
            raise TimeoutError("the effect did not show within 30 s")


def _container(name: str) -> tuple[str, int]:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "chaoslab/busybox:1", "sleep", "3600"],
                   check=True, capture_output=True)
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}} {{.State.Pid}}", name], check=True, capture_output=True,
                         text=True).stdout.split()
    return out[0], int(out[1])


def _restart(name: str) -> int:
    subprocess.run(["docker", "start", name], check=True, capture_output=True)
    return int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], check=True, capture_output=True,
                              text=True).stdout)


def container_figures(reps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(chaoslab, docker CLI): kill, pause, unpause on two containers of the same image."""
    from chaoslab import faults
    from chaoslab.targets import TargetSpec, resolve

    ns: dict[str, object] = {}
    exec(WAIT_STATE, ns)
    state = ns["state"]
    tag = f"bench-actuation-{time.time_ns() % 10**8}"
    ours: dict[str, list[float]] = {"kill": [], "pause": [], "unpause": []}
    cli: dict[str, list[float]] = {"kill": [], "pause": [], "unpause": []}
    names = (f"{tag}-chaoslab", f"{tag}-cli")
    try:
        (cid_a, _), (cid_b, _) = _container(names[0]), _container(names[1])
        pause = faults.get("container.pause")
        kill = faults.get("container.kill")
        target = resolve("c", TargetSpec(container=names[0]))
        for _ in range(reps):
            fault = pause(pause.Params(), target)
            t = time.perf_counter()
            fault.inject()
            _spin(lambda: _freezer(cid_a) == "FROZEN")
            ours["pause"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fault.revert()
            _spin(lambda: _freezer(cid_a) == "THAWED")
            ours["unpause"].append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(["docker", "pause", names[1]], check=True, capture_output=True)
            _spin(lambda: _freezer(cid_b) == "FROZEN")
            cli["pause"].append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(["docker", "unpause", names[1]], check=True, capture_output=True)
            _spin(lambda: _freezer(cid_b) == "THAWED")
            cli["unpause"].append(time.perf_counter() - t)
        for _ in range(reps):
            target = resolve("c", TargetSpec(container=names[0]))
            pid = target.processes[0].pid
            fault = kill(kill.Params(), target)
            t = time.perf_counter()
            fault.inject()
            _spin(lambda p=pid: state(p) in ("Z", "gone"))  # type: ignore[misc, operator]
            ours["kill"].append(time.perf_counter() - t)
            pid_b = _restart(names[1]) if cli["kill"] else int(subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Pid}}", names[1]], check=True, capture_output=True,
                text=True).stdout)
            t = time.perf_counter()
            subprocess.run(["docker", "kill", names[1]], check=True, capture_output=True)
            _spin(lambda p=pid_b: state(p) in ("Z", "gone"))  # type: ignore[misc, operator]
            cli["kill"].append(time.perf_counter() - t)
            _spin(lambda: subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", names[0]],
                                         capture_output=True, text=True).stdout.strip() == "false")
            _restart(names[0])
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
    return ours, cli


def docker_answers() -> bool:
    from chaoslab.cli import doctor

    return doctor.check("docker").ok and subprocess.run(
        ["docker", "image", "inspect", "chaoslab/busybox:1"], capture_output=True).returncode == 0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--container-reps", type=int, default=100)
    ap.add_argument("--no-containers", action="store_true", help="Skip the container figures.")
    ap.add_argument("--containers-only", action="store_true", help="Only the container figures.")
    args = ap.parse_args()
    if not args.no_containers:
        if docker_answers():
            ours_c, cli_c = container_figures(args.container_reps)
            print(f"container actuation, call -> effect in the kernel, {args.container_reps} repetitions")
            print(f"{'':8}{'chaoslab p50':>14}{'p99':>10}{'docker CLI p50':>16}{'p99':>10}{'ratio p50':>11}")
            for kind in ("kill", "pause", "unpause"):
                a50, a99 = pct(ours_c[kind], 50) * 1e3, pct(ours_c[kind], 99) * 1e3
                c50, c99 = pct(cli_c[kind], 50) * 1e3, pct(cli_c[kind], 99) * 1e3
                print(f"{kind:8}{a50:>12.3f}ms{a99:>8.3f}ms{c50:>14.3f}ms{c99:>8.3f}ms{c50 / a50:>10.1f}x")
        else:
            print("containers: skipped (Docker does not answer or chaoslab/busybox:1 is missing: scripts/images.sh)")
        if args.containers_only:
            return
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
