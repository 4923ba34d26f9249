"""Process faults on real child processes; effects observed in /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from tests.conftest import Service, proc_state, start_service, stop_service, stopped, wait_until

from chaoslab import faults
from chaoslab.errors import FaultError, TargetError
from chaoslab.faults.base import NoParams
from chaoslab.faults.process import CrashloopParams, PauseParams, SignalParams, TerminateParams
from chaoslab.system.cgroups import Group
from chaoslab.targets import ProcessRef, ResolvedTarget, TargetSpec, resolve


def target_of(svc: Service) -> ResolvedTarget:
    return resolve("svc", TargetSpec(pid=svc.pid))


def test_kill(service: Service) -> None:
    fault = faults.get("process.kill")(NoParams(), target_of(service))
    fault.inject()
    assert service.proc.wait(timeout=5) == -signal.SIGKILL


def test_pause_and_resume_with_signals(service: Service) -> None:
    fault = faults.get("process.pause")(PauseParams(method="signal"), target_of(service))
    fault.inject()
    assert stopped(service.pid, timeout=5.0)
    fault.revert()
    assert wait_until(lambda: proc_state(service.pid) != "T")
    fault.revert()  # idempotent
    assert proc_state(service.pid) != "T"


def test_pause_revert_from_ledger_record_in_another_process(service: Service) -> None:
    fault = faults.get("process.pause")(
        PauseParams(method="signal"), target_of(service), run_id="r1"
    )
    fault.inject()
    assert stopped(service.pid, timeout=5.0)
    import json

    record = json.dumps(fault.to_record())
    code = (
        "import json,sys; from chaoslab import faults; rec=json.loads(sys.argv[1]); "
        "faults.get(rec['fault']).from_record(rec).revert()"
    )
    subprocess.run([sys.executable, "-c", code, record], check=True, timeout=30)
    assert wait_until(lambda: proc_state(service.pid) != "T")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for cgroups")
def test_pause_with_the_cgroup_freezer_freezes_children_too(tmp_path: Path) -> None:
    # a parent with a child, both in a cgroup of their own: SIGSTOP would miss the child
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess,sys,time; "
            "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)",
        ]
    )
    group = Group(f"chaoslab-test-freezer-{os.getpid()}", controllers=["freezer"])
    try:
        group.create()
        group.add(parent.pid)
        assert wait_until(lambda: len(psutil.Process(parent.pid).children()) == 1)
        child = psutil.Process(parent.pid).children()[0]
        group.add(child.pid)
        target = target_of(Service(parent, 0))
        assert "freezer" in target.cgroups
        fault = faults.get("process.pause")(PauseParams(), target)
        fault.inject()
        assert fault.state["freezer"]
        assert wait_until(lambda: proc_state(parent.pid) in "TD" and proc_state(child.pid) in "TD")
        assert group.frozen()
        fault.revert()
        assert not group.frozen()
        assert wait_until(lambda: proc_state(child.pid) == "S")
    finally:
        group.thaw()
        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()
        group.remove()
    assert not group.exists()


def test_terminate_escalates_to_sigkill_after_grace() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == b"ready"
    target = resolve("x", TargetSpec(pid=stubborn.pid))
    fault = faults.get("process.terminate")(TerminateParams(grace=0.3), target)
    fault.inject()
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert fault.state["killed_after_grace"] == [stubborn.pid]


def test_signal_delivers_the_named_signal(tmp_path: Path) -> None:
    marker = tmp_path / "got-usr1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,sys,time,pathlib; "
            f"signal.signal(signal.SIGUSR1, lambda *a: pathlib.Path({str(marker)!r}).write_text('x')); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        fault = faults.get("process.signal")(
            SignalParams(signal="usr1"), resolve("x", TargetSpec(pid=proc.pid))
        )
        fault.inject()
        assert wait_until(marker.exists)
    finally:
        proc.kill()
        proc.wait()


def test_crashloop_kills_again_each_tick() -> None:
    first, second = start_service(), start_service()
    try:
        target = resolve("svc", TargetSpec(process=first.pattern))
        fault = faults.get("process.crashloop")(CrashloopParams(interval=0.1), target)
        fault.inject()
        assert first.proc.wait(timeout=5) == -signal.SIGKILL
        # the "restarted" service is a new process matching the spec's pattern after refresh
        target.spec["process"] = second.pattern
        fault.tick()
        assert second.proc.wait(timeout=5) == -signal.SIGKILL
        assert len(fault.state["kills"]) == 2
    finally:
        stop_service(first)
        stop_service(second)


def test_reused_pid_is_never_signalled(service: Service) -> None:
    stale = ProcessRef(service.pid, psutil.Process(service.pid).create_time() - 100.0)
    target = ResolvedTarget(name="svc", kind="pid", spec={"pid": service.pid}, processes=[stale])
    with pytest.raises(FaultError, match="no live process"):
        faults.get("process.kill")(NoParams(), target).inject()
    assert service.alive()


def test_protected_processes_are_refused() -> None:
    with pytest.raises(TargetError, match="refusing pid"):
        resolve("me", TargetSpec(pid=os.getpid()))
    with pytest.raises(TargetError, match="refusing"):
        resolve("parent", TargetSpec(pid=os.getppid()))
    # a pattern matching this very test process must not select it
    me = " ".join(psutil.Process().cmdline())
    assert os.getpid() not in [r.pid for r in _try_resolve_pattern(me)]


def _try_resolve_pattern(pattern: str) -> list[ProcessRef]:
    import re

    try:
        return resolve("p", TargetSpec(process=re.escape(pattern), mode="all")).processes
    except TargetError:
        return []


def test_pid_1_is_rejected_by_the_model() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TargetSpec(pid=1)


def test_blast_radius_modes() -> None:
    services = [start_service() for _ in range(4)]
    try:
        pattern = "|".join(s.pattern for s in services)
        with pytest.raises(TargetError, match=r"matches 4 processes .* but mode is 'one'"):
            resolve("many", TargetSpec(process=pattern))
        assert len(resolve("many", TargetSpec(process=pattern, mode="all")).processes) == 4
        assert len(resolve("many", TargetSpec(process=pattern, mode="count:3")).processes) == 3
        assert len(resolve("many", TargetSpec(process=pattern, mode="percent:50")).processes) == 2
        with pytest.raises(TargetError, match="mode asks for 5"):
            resolve("many", TargetSpec(process=pattern, mode="count:5"))
        with pytest.raises(TargetError, match="no process matches"):
            resolve("none", TargetSpec(process="no-such-process-pattern-xyzzy"))
    finally:
        for s in services:
            stop_service(s)
