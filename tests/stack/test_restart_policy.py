"""Restart policies with plain command services: always, on-failure with a maximum, no, and
manual restarts; the liveness rule (a health check failing for a set time); plus a service that
fails while the stack starts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from stack_helpers import StackFactory, pid_alive, wait_for
from tests.conftest import stopped

from chaoslab.analysis.stackevents import stack_events, stack_findings
from chaoslab.runner.platform_events import as_records
from chaoslab.stack import Stack
from chaoslab.stack.errors import StackError


def _always_worker(stacks: StackFactory, name: str) -> tuple[Stack, int]:
    """A stack of one ``sleep 300`` worker, restarted always after 300 ms: (the stack, its pid)."""
    stack = stacks.load(f"""
name: {name}
services:
  worker:
    command: sleep 300
    restart: {{policy: always, backoff: 300ms}}
""")
    return stack, stack.up(timeout=30)["services"]["worker"]["pid"]


def _restarted(stack: Stack, old: int) -> int:
    """The worker's pid once its supervisor has started it again after ``old``."""
    return int(wait_for(lambda: (p := stack.resolve("worker")["pid"]) not in (None, old) and p, 15, "restart"))


def test_always_restarts_a_killed_service_after_its_backoff(stacks: StackFactory) -> None:
    stack, old = _always_worker(stacks, "always")
    os.kill(old, signal.SIGKILL)
    new = _restarted(stack, old)
    assert pid_alive(new)
    exit_ev, restart_ev = [e for e in stack.events() if e["event"] in ("exit", "restart")]
    assert exit_ev["signal"] == 9 and restart_ev["pid"] == new
    assert restart_ev["time"] - exit_ev["time"] >= 0.3  # the backoff was honoured
    assert stack.resolve("worker")["restarts"] == 1


def test_on_failure_with_a_maximum_stops_retrying(stacks: StackFactory) -> None:
    stack = stacks.load("""
name: flaky
services:
  flaky:
    command: [sh, -c, "sleep 1; exit 3"]
    restart: {policy: on-failure, max: 2, backoff: 50ms}
  steady:
    command: sleep 300
""")
    stack.up(timeout=30)
    wait_for(lambda: stack.ps()["services"]["flaky"]["status"] == "gave_up", 30, "gave_up")
    time.sleep(0.8)  # and it stays given up
    ev = [e for e in stack.events() if e["service"] == "flaky"]
    kinds = [e["event"] for e in ev]
    assert kinds.count("start") == 1 and kinds.count("restart") == 2 and kinds.count("exit") == 3
    assert kinds[-1] == "gave_up"
    assert all(e["code"] == 3 for e in ev if e["event"] == "exit")
    svc = stack.ps()["services"]["flaky"]
    assert svc["pid"] is None and svc["restarts"] == 2 and svc["exit_code"] == 3
    assert stack.ps()["services"]["steady"]["status"] == "running"


def test_on_failure_does_not_restart_a_clean_exit(stacks: StackFactory) -> None:
    stack = stacks.load("""
name: clean
services:
  once:
    command: [sh, -c, "sleep 1; exit 0"]
    restart: on-failure
""")
    stack.up(timeout=30)
    wait_for(lambda: stack.ps()["services"]["once"]["status"] == "exited", 15, "exit")
    time.sleep(0.5)
    assert [e["event"] for e in stack.events() if e["service"] == "once"] == ["start", "exit"]


def test_a_service_failing_during_up_is_one_clear_error_and_nothing_stays(
    stacks: StackFactory,
) -> None:
    stack = stacks.load("""
name: broken
services:
  ok:
    command: sleep 300
  bad:
    command: [sh, -c, "echo 'cannot open config.ini' >&2; exit 2"]
    depends_on: [ok]
""")
    with pytest.raises(StackError) as err:
        stack.up(timeout=30)
    msg = str(err.value)
    assert "\n" not in msg
    assert "'bad' exited with code 2 while the stack was starting: cannot open config.ini" in msg
    assert not stack.dir.supervisor_alive()
    ok_pid = next(
        e["pid"] for e in stack.events() if e["event"] == "start" and e["service"] == "ok"
    )
    assert not pid_alive(ok_pid)


def test_manual_restart_replaces_the_process(stacks: StackFactory) -> None:
    stack = stacks.load("""
name: manual
services:
  web:
    command: [python3, -m, http.server, "0", --bind, 127.0.0.1]
    restart: {policy: on-failure, max: 0}
""")
    old = stack.up(timeout=30)["services"]["web"]["pid"]
    st = stack.restart(["web"], timeout=30)
    new = st["services"]["web"]["pid"]
    assert new != old and pid_alive(new) and not pid_alive(old)
    reasons = [e.get("reason") for e in stack.events() if e["event"] == "restart"]
    assert reasons == ["manual"]
    with pytest.raises(StackError, match="no service 'nope'"):
        stack.restart(["nope"])


LIVENESS = """
name: live
services:
  worker:
    command: sleep 300
    healthcheck: {{command: "test ! -e {flag}", interval: 200ms, timeout: 1s, retries: 1, start_period: 0s}}
    restart: {{policy: "{policy}", backoff: 100ms}}
    {liveness}
"""


def test_liveness_restarts_a_service_whose_health_check_keeps_failing(stacks: StackFactory) -> None:
    """Up, but no longer serving: the supervisor stops it once its check has failed for 1.5 s and
    the restart policy starts a new one, with the reason in the events."""
    flag = stacks.root / f"sick-{os.getpid()}-{time.monotonic_ns()}"
    stack = stacks.load(LIVENESS.format(flag=flag, policy="always", liveness="liveness: {failing_for: 1500ms}"))
    old = stack.up(timeout=30)["services"]["worker"]["pid"]
    flag.touch()
    new = wait_for(lambda: (p := stack.resolve("worker")["pid"]) not in (None, old) and p, 30, "restart")
    flag.unlink()
    wait_for(lambda: stack.resolve("worker")["health"] == "healthy", 30, "healthy again")
    assert pid_alive(new) and not pid_alive(old)
    ev = [e for e in stack.events() if e["service"] == "worker"]
    first_failure = next(e for e in ev if e["event"] == "health" and e["status"] == "unhealthy")
    live = next(e for e in ev if e["event"] == "liveness")
    exit_ev = next(e for e in ev if e["event"] == "exit")
    restart = next(e for e in ev if e["event"] == "restart")
    # not before the checks had failed for the limit, by the supervisor's own count and the clock
    assert live["failing_for"] >= 1.5 and live["limit"] == 1.5 and live["pid"] == old
    assert live["time"] - first_failure["time"] >= 1.5 - 0.25  # the first failing check counts
    assert exit_ev["pid"] == old and live["time"] <= exit_ev["time"] <= restart["time"]
    assert restart["reason"] == "liveness" and restart["pid"] == new
    assert stack.resolve("worker")["restarts"] == 1
    # and a run's report says so, from these events as the runner copies them into its journal
    journal = as_records(stack.events(), first_failure["time"] - 10, "stack")
    (finding,) = stack_findings(stack_events(journal), t_inject=0.0)
    assert finding.startswith("worker was restarted by its restart policy, stopped by the liveness rule "
                              f"after its health check failed for {live['failing_for']:.1f} s"), finding


@pytest.mark.parametrize("policy", ["always", "no"])
def test_without_liveness_or_a_restart_policy_a_failing_check_only_marks_unhealthy(
    stacks: StackFactory, policy: str
) -> None:
    """No ``liveness``: unhealthy, never restarted (a paused service stays paused). With liveness
    but policy ``no``: stopped and left stopped, as the policy says."""
    flag = stacks.root / f"sick-{os.getpid()}-{time.monotonic_ns()}"
    liveness = "" if policy == "always" else "liveness: {failing_for: 500ms}"
    stack = stacks.load(LIVENESS.format(flag=flag, policy=policy, liveness=liveness))
    old = stack.up(timeout=30)["services"]["worker"]["pid"]
    flag.touch()
    wait_for(lambda: stack.resolve("worker")["health"] == "unhealthy", 30, "unhealthy")
    if policy == "always":
        time.sleep(2)  # what must NOT happen has had four times its 500 ms
        assert stack.resolve("worker")["pid"] == old and pid_alive(old)
        assert not [e for e in stack.events() if e["event"] in ("liveness", "exit", "restart")]
    else:
        wait_for(lambda: stack.ps()["services"]["worker"]["status"] == "exited", 30, "stopped")
        assert not pid_alive(old)
        kinds = [e["event"] for e in stack.events() if e["service"] == "worker"]
        assert "liveness" in kinds and "restart" not in kinds


def test_restart_returns_the_new_process_when_the_supervisor_writes_its_state_slowly(
    stacks: StackFactory,
) -> None:
    """`restart` answers with the state that holds the new process. On a busy machine the
    supervisor can be descheduled between its reply and its state write; strace delays every
    rename it makes (its state file is written by rename) by 0.5 s to hold that moment open."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace (scripts/setup.sh installs it)")
    stack = stacks.load("""
name: slowstate
services:
  web:
    command: sleep 300
    restart: {policy: on-failure, max: 0}
""")
    old = stack.up(timeout=30)["services"]["web"]["pid"]
    supervisor = stack.ps()["supervisor"]["pid"]
    renames = "rename,renameat,renameat2"
    tracer = subprocess.Popen(
        [
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            f"trace={renames}",
            "-e",
            f"inject={renames}:delay_enter=500000",
            "-p",
            str(supervisor),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _tracer_of(supervisor) != 0, 20, "strace to attach")
        st = stack.restart(["web"], timeout=30)
    finally:
        tracer.terminate()
        tracer.wait(timeout=20)
    new = st["services"]["web"]["pid"]
    restarted = [e["pid"] for e in stack.events() if e["event"] == "restart"]
    assert restarted and new == restarted[-1] != old, (old, new, restarted)
    assert pid_alive(new) and not pid_alive(old)


def _tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("TracerPid:"))


def test_a_process_probe_follows_a_restarted_service(stacks: StackFactory) -> None:
    """The process probe of a stack service looks the service up again once its pid is gone, so
    a service its policy brought back is alive again (the generated kill experiments of the
    exchange stack had reported a restarted PostgreSQL dead for the rest of the run)."""
    import asyncio

    from chaoslab import probes
    from chaoslab.experiment.model import ProbeSpec
    from chaoslab.probes import ProbeContext
    from chaoslab.targets import TargetSpec, resolve

    stack, old = _always_worker(stacks, "followed")
    target = resolve("worker", TargetSpec.model_validate({"service": "worker"}), stack_file=str(stack.file))
    probe = probes.build("p", ProbeSpec.model_validate({"process": {"target": "worker"}}),
                         ProbeContext({"worker": target}))
    sample = lambda: asyncio.run(probe.sample())  # noqa: E731
    assert sample().ok
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old), 10, "the kill")
    new = _restarted(stack, old)
    s = sample()
    assert s.ok and s.value == 1, s
    os.kill(new, signal.SIGSTOP)
    try:
        assert stopped(new)  # a SIGSTOP lands when the process next runs
        s = sample()
        assert not s.ok and s.error == f"pid {new} is stopped", s  # the new pid is the one watched
    finally:
        os.kill(new, signal.SIGCONT)
