"""``down`` in the hard cases: services a fault left frozen or SIGSTOPped, and a supervisor that
was killed -9 and left its services behind."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from stack_helpers import StackFactory, cgroup_dirs, free_port, pid_alive, wait_for

from chaoslab.system.cgroups import Group

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (cgroups)")

TWO = """
name: {name}
services:
  frozen:
    command: sleep 300
    stop_grace: 20s
  stopped:
    command: sleep 300
    stop_grace: 20s
"""


def test_down_wakes_frozen_and_stopped_services_and_stops_them_gracefully(
    stacks: StackFactory,
) -> None:
    stack = stacks.load(TWO.format(name="paused"))
    st = stack.up(timeout=30)
    frozen = Group(dirs={"freezer": st["services"]["frozen"]["cgroups"]["freezer"]})
    frozen.freeze()
    os.kill(st["services"]["stopped"]["pid"], signal.SIGSTOP)
    time.sleep(0.5)
    assert stack.ps()["services"]["frozen"]["status"] == "running"  # paused is not dead
    t0 = time.monotonic()
    stack.down(timeout=40)
    assert time.monotonic() - t0 < 10  # SIGTERM worked: nobody waited for the 20 s grace
    stops = [e for e in stack.events() if e["event"] == "exit"]
    assert {e["service"] for e in stops} == {"frozen", "stopped"}
    assert all(e["expected"] and e["signal"] == 15 and "stopped" in e["message"] for e in stops)
    assert not any(pid_alive(s["pid"]) for s in st["services"].values())
    assert not any(d.exists() for d in cgroup_dirs(st))
    # the stack's own group is gone, and the shared parent too unless another stack still uses it
    for d in cgroup_dirs(st):
        assert not d.parent.exists()
        shared = d.parent.parent
        assert not shared.exists() or any(c.is_dir() for c in shared.iterdir())


def test_down_after_the_supervisor_was_killed_cleans_up_its_services(stacks: StackFactory) -> None:
    stack = stacks.load(TWO.format(name="orphans"))
    st = stack.up(timeout=30)
    os.kill(st["supervisor"]["pid"], signal.SIGKILL)
    wait_for(lambda: not stack.dir.supervisor_alive(), 10, "supervisor dead")
    assert stack.ps()["status"] == "supervisor-dead"
    pids = [s["pid"] for s in st["services"].values()]
    assert all(pid_alive(p) for p in pids)  # orphaned, still running
    stack.down(timeout=30)
    wait_for(lambda: not any(pid_alive(p) for p in pids), 10, "orphans killed")
    assert not any(d.exists() for d in cgroup_dirs(st))


def test_up_after_the_supervisor_was_killed_replaces_its_orphans(stacks: StackFactory) -> None:
    port = free_port()
    stack = stacks.load(f"""
name: again
services:
  web:
    command: ["{sys.executable}", -m, http.server, "{port}", --bind, 127.0.0.1]
    ports: [{port}]
    healthcheck: {{tcp: {port}}}
""")
    old = stack.up(timeout=30)
    os.kill(old["supervisor"]["pid"], signal.SIGKILL)
    wait_for(lambda: not stack.dir.supervisor_alive(), 10, "supervisor dead")
    new = stack.up(timeout=30)  # not "port in use": the orphan holding it is swept first
    assert new["services"]["web"]["pid"] != old["services"]["web"]["pid"]
    assert not pid_alive(old["services"]["web"]["pid"])
