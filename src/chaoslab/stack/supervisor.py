"""The supervisor daemon: starts services in dependency order, checks their health, applies
restart policies and records every exit, restart and health change with its wall-clock time.

It is the parent of every service, so it learns of real exits from ``waitpid`` alone: a service
paused by a fault (SIGSTOP, cgroup freezer) fails its health checks but is never treated as
dead. One thread runs the loop; health checks run in a small pool and wake the loop when done.

    python -m chaoslab.stack.supervisor --state-dir DIR [--daemonize]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from ..system.cgroups import Group, prune
from . import health, process, state
from .plan import ServicePlan, StackPlan

STABLE_AFTER = 10.0
"""A service up this long gets its restart backoff reset."""
SETTLE = 0.3
"""A service without a health check counts as ready once it has stayed up this long, so
that one that dies at once (bad flag, missing file) fails ``up`` instead of slipping through."""


class Service:
    """Runtime state of one service."""

    def __init__(self, plan: ServicePlan, group: Group | None) -> None:
        self.plan = plan
        self.group = group
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.create_time: float | None = None
        self.status = "pending"
        self.health = "starting" if plan.health else "none"
        self.failures = 0
        self.failing_since: float | None = None
        """When the current run of failing health checks began to count (for ``liveness``)."""
        self.last_check = ""
        self.started = 0.0
        self.exited_at = 0.0
        self.started_at_wall: float | None = None
        self.next_check = 0.0
        self.checking: Future[tuple[bool, str]] | None = None
        self.restarts = 0
        self.backoff = plan.restart.backoff
        self.next_restart: float | None = None
        self.restart_reason = "policy"
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.ever_started = False

    def ready(self, now: float) -> bool:
        if self.status != "running":
            return False
        return self.health == "healthy" or (self.health == "none" and now - self.started >= SETTLE)

    def to_state(self) -> dict[str, Any]:
        info = {k: v for k, v in self.plan.info.items() if k not in ("bootstrap", "bin_dir")}
        return {
            "kind": self.plan.kind,
            "pid": self.pid,
            "create_time": self.create_time,
            "status": self.status,
            "health": self.health,
            "last_check": self.last_check,
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "exit_signal": self.exit_signal,
            "started_at": self.started_at_wall,
            "cgroups": {c: str(d) for c, d in (self.group.dirs.items() if self.group else [])},
            "ports": self.plan.ports,
            "user": self.plan.user,
            "log": self.plan.log,
            "depends_on": self.plan.depends,
            "restart_policy": self.plan.restart.policy,
            "liveness": self.plan.liveness,
            **info,
        }


class Supervisor:
    def __init__(self, plan: StackPlan) -> None:
        self.plan = plan
        self.dir = state.StateDir(plan.state_dir)
        self.services = {n: Service(p, process.service_group(plan.cgroup, n)) for n, p in plan.services.items()}
        self.status = "starting"
        self.error: str | None = None
        self.stop_requested = False
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.dirty = True
        me = psutil.Process()
        self.me = {"pid": me.pid, "create_time": me.create_time()}

    # -- events and state ----------------------------------------------------------------
    def event(self, kind: str, service: str | None, message: str, **fields: Any) -> None:
        self.dir.append_event({"time": time.time(), "stack": self.plan.name, "service": service,
                               "event": kind, "message": message, **fields})
        self.dirty = True

    def write_state(self) -> None:
        self.dir.write_state({
            "name": self.plan.name,
            "stack_file": self.plan.stack_file,
            "state_dir": self.plan.state_dir,
            "status": self.status,
            "error": self.error,
            "supervisor": self.me,
            "updated": time.time(),
            "order": self.plan.order,
            "services": {n: s.to_state() for n, s in self.services.items()},
        })
        self.dirty = False

    def set_health(self, svc: Service, new: str, detail: str) -> None:
        if svc.health == new:
            return
        previous, svc.health = svc.health, new
        self.event("health", svc.plan.name, f"{svc.plan.name} is {new} ({detail})",
                   status=new, previous=previous, detail=detail, pid=svc.pid)

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for svc in self.services.values():
            if svc.group is None:
                if any(v is not None for v in svc.plan.resources.values()):
                    self.event("warning", svc.plan.name, "resources ignored: cgroups need root")
                continue
            svc.group.create()
            process.enable_v2_controllers(svc.group)
            if svc.plan.info.get("realtime") and (why := process.grant_realtime(svc.group)):
                self.event("warning", svc.plan.name, f"SCHED_FIFO will be refused: {why}")
            res = svc.plan.resources
            if res.get("cpu") is not None:
                svc.group.set_cpu(float(res["cpu"] or 0))
            if res.get("memory") is not None:
                svc.group.set_memory(int(res["memory"] or 0))
            if res.get("pids") is not None:
                svc.group.set_pids_max(int(res["pids"] or 0))
        self.event("stack", None, f"stack {self.plan.name} starting", status="starting")

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def run(self) -> int:
        self.setup()
        t0 = time.monotonic()
        while not self.stop_requested:
            now = time.monotonic()
            self.reap(now)
            self.control()
            self.start_due(now)
            self.check_due(now)
            if self.status == "starting":
                self.check_startup(t0)
            if self.status == "failed":
                break
            if self.dirty:
                self.write_state()
            self.sleep(self.next_wakeup(time.monotonic()))
        self.shutdown()
        return 0 if self.status != "failed" else 1

    def sleep(self, timeout: float) -> None:
        import select

        with contextlib.suppress(InterruptedError):
            select.select([self.wake_r], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.wake_r, 512):
                pass

    def next_wakeup(self, now: float) -> float:
        due = [now + 1.0]
        for s in self.services.values():
            if s.next_restart is not None:
                due.append(s.next_restart)
            if s.plan.health and s.status == "running" and s.checking is None:
                due.append(s.next_check)
            if s.status == "pending":
                due.append(now + 0.05)
            if self.status == "starting" and s.status == "running" and s.health == "none":
                due.append(s.started + SETTLE)
        return min(due) - now

    # -- starting ---------------------------------------------------------------------------
    def deps_met(self, svc: Service) -> bool:
        for dep, cond in svc.plan.depends.items():
            d = self.services[dep]
            if cond == "healthy" and not (d.status == "running" and d.health == "healthy"):
                return False
            if cond == "started" and d.status != "running":
                return False
        return True

    def start_due(self, now: float) -> None:
        for svc in self.services.values():
            if svc.status == "pending" and self.deps_met(svc):
                self.start(svc, reason=None)
            elif svc.status == "backoff" and svc.next_restart is not None and now >= svc.next_restart:
                self.start(svc, reason=svc.restart_reason)

    def start(self, svc: Service, reason: str | None) -> None:
        name = svc.plan.name
        svc.next_restart = None
        if reason is not None:
            svc.restarts += 1
        try:
            svc.proc = process.launch(svc.plan, svc.group)
        except OSError as exc:
            svc.proc = None
            self.event("exit", name, f"{name} could not be started: {exc}", code=127, signal=None,
                       expected=False, error=str(exc))
            svc.exit_code, svc.exit_signal = 127, None
            self.after_exit(svc, time.monotonic(), failed=True)
            return
        svc.pid = svc.proc.pid
        try:
            svc.create_time = psutil.Process(svc.pid).create_time()
        except psutil.Error:
            svc.create_time = None
        svc.status = "running"
        svc.started = time.monotonic()
        svc.started_at_wall = time.time()
        svc.failures = 0
        svc.failing_since = None
        svc.next_check = svc.started + (svc.plan.health.start_interval if svc.plan.health else 0)
        if svc.plan.health:
            svc.health = "starting"
        if reason is None:
            svc.ever_started = True
            self.event("start", name, f"{name} started (pid {svc.pid})", pid=svc.pid)
        else:
            after = svc.started - svc.exited_at
            self.event("restart", name, f"{name} restarted ({reason}) as pid {svc.pid}, {after:.2f}s after it exited",
                       pid=svc.pid, reason=reason, restarts=svc.restarts, after_exit=round(after, 3))

    def check_startup(self, t0: float) -> None:
        for svc in self.services.values():
            if svc.status in ("exited", "gave_up"):
                self.status = "failed"
                how = (f"exited with code {svc.exit_code}" if svc.exit_signal is None
                       else f"was killed by {signal.Signals(svc.exit_signal).name}")
                self.error = f"service {svc.plan.name!r} {how} while the stack was starting{_log_tail(svc.plan.log)}"
                self.event("stack", None, f"stack {self.plan.name} failed: {self.error}", status="failed")
                return
        if all(s.ready(time.monotonic()) for s in self.services.values()):
            self.status = "up"
            self.event("stack", None, f"stack {self.plan.name} is up in {time.monotonic() - t0:.2f}s", status="up")

    # -- exits and restart policies ----------------------------------------------------------
    def reap(self, now: float) -> None:
        for svc in self.services.values():
            if svc.proc is None or svc.status != "running":
                continue
            try:
                pid, status = os.waitpid(svc.proc.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = svc.proc.pid, 0
            if pid == 0:
                continue  # still running, or stopped by a fault: not our business
            svc.proc.returncode = os.waitstatus_to_exitcode(status)
            self.on_exit(svc, svc.proc.returncode, now)

    def on_exit(self, svc: Service, code: int, now: float) -> None:
        name = svc.plan.name
        svc.exit_code, svc.exit_signal = (code, None) if code >= 0 else (None, -code)
        how = f"code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        self.event("exit", name, f"{name} exited ({how}) after {now - svc.started:.2f}s",
                   pid=svc.pid, code=svc.exit_code, signal=svc.exit_signal, expected=False,
                   uptime=round(now - svc.started, 3))
        # systemd's KillMode=control-group: nothing of the old instance may outlive it
        # (postgres refuses to start while an old backend still holds its shared memory).
        process.kill_leftovers(svc.pid, svc.group)
        if svc.health == "healthy":
            self.set_health(svc, "unhealthy", "process exited")
        self.after_exit(svc, now, failed=code != 0)

    def after_exit(self, svc: Service, now: float, failed: bool, reason: str = "policy") -> None:
        """Apply the restart policy; ``reason`` is what the restart event will say (policy, liveness)."""
        svc.exited_at = now
        svc.restart_reason = reason
        svc.pid = svc.create_time = None
        svc.proc = None
        svc.checking = None
        policy = svc.plan.restart
        wanted = policy.policy == "always" or (policy.policy == "on-failure" and failed)
        if not wanted:
            svc.status = "exited"
            return
        if policy.max is not None and svc.restarts >= policy.max:
            svc.status = "gave_up"
            self.event("gave_up", svc.plan.name,
                       f"{svc.plan.name} not restarted: {svc.restarts} restarts, the maximum is {policy.max}",
                       restarts=svc.restarts)
            return
        if svc.started and now - svc.started >= STABLE_AFTER:
            svc.backoff = policy.backoff
        svc.status = "backoff"
        svc.next_restart = now + svc.backoff
        svc.backoff = min(svc.backoff * 2, policy.max_backoff)
        self.dirty = True

    # -- health ------------------------------------------------------------------------------
    def check_due(self, now: float) -> None:
        for svc in self.services.values():
            h = svc.plan.health
            if h is None or svc.status != "running":
                continue
            fut = svc.checking
            if fut is not None and fut.done():
                svc.checking = None
                ok, detail = fut.result()
                self.on_check(svc, ok, detail, now)
            elif fut is None and now >= svc.next_check:
                fut = self.pool.submit(health.check, h, svc.plan.netns)
                fut.add_done_callback(lambda _f: self._poke())
                svc.checking = fut

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"h")

    def on_check(self, svc: Service, ok: bool, detail: str, now: float) -> None:
        h = svc.plan.health
        assert h is not None
        if detail != svc.last_check:
            svc.last_check = detail
            self.dirty = True
        if ok:
            svc.failures = 0
            svc.failing_since = None
            self.set_health(svc, "healthy", detail)
        else:
            svc.failures += 1
            in_start = svc.health == "starting" and now - svc.started < h.start_period
            if not in_start and svc.failures >= h.retries:
                self.set_health(svc, "unhealthy", detail)
            if not in_start and svc.failing_since is None:
                svc.failing_since = now
            limit = svc.plan.liveness
            if limit is not None and svc.failing_since is not None and now - svc.failing_since >= limit:
                self.restart_dead(svc, now - svc.failing_since, detail)
                return
        svc.next_check = now + (h.start_interval if svc.health == "starting" else h.interval)

    def restart_dead(self, svc: Service, failing: float, detail: str) -> None:
        """The liveness rule: a service whose health check has failed for ``liveness`` seconds is up
        but not serving (a loop that died, a deadlock; or a pause that outlasted the limit, as a
        Kubernetes liveness probe would see it). Stop it like ``down`` would, then let its restart
        policy act as on a failed exit."""
        name = svc.plan.name
        self.event("liveness", name, f"{name} failed its health check for {failing:.1f}s ({detail}): "
                   f"stopping it for its restart policy", pid=svc.pid, failing_for=round(failing, 3),
                   limit=svc.plan.liveness, detail=detail)
        self.set_health(svc, "unhealthy", detail)
        self.stop_service(svc)
        self.after_exit(svc, time.monotonic(), failed=True, reason="liveness")

    # -- control requests from the CLI -------------------------------------------------------
    def control(self) -> None:
        try:
            requests = sorted(p for p in self.dir.control.glob("*.json"))
        except OSError:
            return
        for req in requests:
            try:
                data = json.loads(req.read_text())
            except (OSError, ValueError):
                continue
            req.unlink(missing_ok=True)
            reply: dict[str, Any] = {"ok": True}
            if data.get("op") == "restart":
                for name in data.get("services") or list(self.services):
                    svc = self.services.get(name)
                    if svc is None:
                        reply = {"ok": False, "error": f"unknown service {name!r}"}
                        break
                    self.stop_service(svc)
                    svc.exited_at = time.monotonic()
                    self.start(svc, reason="manual")
            else:
                reply = {"ok": False, "error": f"unknown request {data.get('op')!r}"}
            # State first, then the reply: the client reads the state as soon as the reply is
            # there, and a supervisor descheduled between the two (a busy machine) handed it the
            # old pid. The reply appears whole (rename), never as an empty file.
            self.write_state()
            tmp = req.with_suffix(".reply.tmp")
            tmp.write_text(json.dumps(reply))
            tmp.replace(req.with_suffix(".done"))

    # -- stopping ----------------------------------------------------------------------------
    def stop_service(self, svc: Service) -> None:
        svc.next_restart = None
        proc, name = svc.proc, svc.plan.name
        if proc is not None and svc.status == "running":
            process.wake(proc.pid, svc.group)
            sig = getattr(signal, svc.plan.stop_signal, signal.SIGTERM)
            with contextlib.suppress(OSError):
                os.kill(proc.pid, sig)
            try:
                code = proc.wait(timeout=svc.plan.stop_grace)
                how = "stopped"
            except subprocess.TimeoutExpired:
                process.signal_all(proc.pid, svc.group, signal.SIGKILL)
                code = proc.wait(timeout=10)
                how = f"killed after the {svc.plan.stop_grace:g}s grace period"
            what = f"code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
            self.event("exit", name, f"{name} {how} ({what})", pid=proc.pid,
                       code=code if code >= 0 else None, signal=-code if code < 0 else None, expected=True)
        process.kill_leftovers(svc.pid, svc.group)
        svc.proc = None
        svc.pid = svc.create_time = None
        svc.checking = None
        svc.status = "stopped"
        svc.health = "starting" if svc.plan.health else "none"

    def shutdown(self) -> None:
        if self.status != "failed":
            self.status = "stopping"
        self.write_state()
        for name in reversed(self.plan.order):
            self.stop_service(self.services[name])
        self.remove_cgroups()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.status == "stopping":
            self.status = "down"
        self.event("stack", None, f"stack {self.plan.name} is {self.status}", status=self.status)
        self.write_state()
        state.unregister(Path(self.plan.state_dir))

    def remove_cgroups(self) -> None:
        stack_dirs: set[Path] = set()
        for svc in self.services.values():
            if svc.group is not None:
                stack_dirs.update(d.parent for d in svc.group.dirs.values())
                svc.group.remove()
        prune(stack_dirs, levels=2)  # the stack's group, then the shared chaoslab-stack if it is empty
        for svc in self.services.values():
            if svc.group is not None and svc.plan.info.get("realtime"):
                process.release_realtime(svc.group)  # once its groups are gone (a group in use keeps its budget)


def _log_tail(path: str, lines: int = 1) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("--- chaoslab")]
    return f": {tail[-1][:200]}" if tail[-lines:] else " (no output)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chaoslab-stack-supervisor")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--daemonize", action="store_true")
    args = ap.parse_args(argv)
    sdir = state.StateDir(args.state_dir)
    if args.daemonize and os.fork() > 0:
        os._exit(0)  # the CLI reaps this parent at once; the daemon is reparented to init
    lock_fd = os.open(sdir.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another supervisor runs this stack", file=sys.stderr)
        return 3
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, str(os.getpid()).encode())
    plan = StackPlan.load(sdir.plan)
    state.register(plan.name, plan.stack_file, sdir.root)
    sup = Supervisor(plan)
    try:
        return sup.run()
    except BaseException as exc:
        # Never leave services running unsupervised because of a bug in this loop.
        sup.error = f"supervisor crashed: {type(exc).__name__}: {exc}"
        sup.status = "failed"
        import traceback

        traceback.print_exc()
        sup.shutdown()
        return 1


if __name__ == "__main__":
    sys.exit(main())
