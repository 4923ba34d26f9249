"""The ``stack`` CLI end to end: the supervisor outlives the ``up`` process and keeps applying
restart policies; ps, logs, restart and down work from fresh processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
from stack_helpers import StackFactory, free_port, listening, pid_alive, wait_for


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoslab.stack", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_supervisor_survives_the_cli_and_keeps_restarting(stacks: StackFactory) -> None:
    port = free_port()
    path = stacks.write(f"""name: clitest
services:
  cache:
    redis: {{port: {port}}}
    restart: {{policy: always, backoff: 100ms}}
  web:
    command: ["{sys.executable}", -m, http.server, "0", --bind, 127.0.0.1]
    depends_on: [cache]
    restart: always
""")
    stack = stacks.track(path)
    up = subprocess.Popen(
        [sys.executable, "-m", "chaoslab.stack", "up", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = up.communicate(timeout=120)
    assert up.returncode == 0, err
    assert "stack clitest is up in" in out and "cache" in out and "running" in out

    ps = _cli("ps", str(path), "--json")
    assert ps.returncode == 0, ps.stderr
    st = json.loads(ps.stdout)
    sup = psutil.Process(st["supervisor"]["pid"])
    assert sup.ppid() != up.pid and not pid_alive(
        up.pid
    )  # the CLI is gone, the daemon is not its child
    assert os.getsid(sup.pid) != os.getsid(
        0
    )  # its own session: a closing terminal does not hang it up
    assert st["status"] == "up" and listening(port)

    old = st["services"]["cache"]["pid"]
    os.kill(old, signal.SIGKILL)

    def restarted() -> bool:
        s = json.loads(_cli("ps", str(path), "--json").stdout)["services"]["cache"]
        return s["pid"] not in (None, old) and s["health"] == "healthy"

    wait_for(restarted, 30, "cache restarted by the supervisor after the CLI exited")

    logs = _cli("logs", str(path), "cache", "-n", "200")
    assert logs.returncode == 0 and logs.stdout.count("--- chaoslab stack: starting cache") == 2

    web_old = stack.resolve("web")["pid"]
    rs = _cli("restart", str(path), "web")
    assert rs.returncode == 0, rs.stderr
    assert stack.resolve("web")["pid"] != web_old

    table = _cli("ps", str(path))
    assert "RESTARTS" in table.stdout and "healthy" in table.stdout

    down = _cli("down", str(path))
    assert down.returncode == 0, down.stderr
    assert not sup.is_running() or sup.status() == psutil.STATUS_ZOMBIE
    assert not listening(port)
    assert _cli("ps", str(path)).stdout.startswith("stack clitest: down")
