"""pids.limit makes fork fail; process.rlimit makes open fail; both revert."""

from __future__ import annotations

import resource

from tests.conftest import Children, audit

from chaoslab.faults.limits import PidsLimit, PidsParams, ProcessRlimit, RlimitParams

from .conftest import process_target, readline, revert_elsewhere, send

FORKER = """
import os, sys, time
sys.stdin.readline()
ok = failed = 0
for _ in range(12):
    try:
        pid = os.fork()
    except BlockingIOError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(1.5); os._exit(0)
    ok += 1
print(ok, failed, flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
sys.stdin.readline()
"""


def test_pids_limit_makes_fork_fail(children: Children, run_id: str) -> None:
    proc = children.python(FORKER)
    fault = PidsLimit(PidsParams(max=5), process_target(proc.pid), run_id=run_id)
    PidsLimit.check()
    fault.inject()
    send(proc, "go")
    ok, failed = map(int, readline(proc).split())
    print(f"pids.limit 5: {ok} forks succeeded, {failed} failed")
    assert ok == 4 and failed == 8  # the process itself is the fifth task
    revert_elsewhere(fault)
    send(proc, "done")
    assert proc.wait(timeout=10) == 0
    audit(run_id)


OPENER = """
import os, sys
while sys.stdin.readline():
    fds, error = [], ""
    try:
        for _ in range(100):
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        error = exc.strerror
    for fd in fds:
        os.close(fd)
    print(len(fds), error, flush=True)
"""


def test_rlimit_nofile_on_a_running_process(children: Children, run_id: str) -> None:
    proc = children.python(OPENER)

    def attempt() -> str:
        send(proc, "go")
        return str(readline(proc).strip())

    assert attempt() == "100"
    before = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
    fault = ProcessRlimit(
        RlimitParams(resource="nofile", soft=20), process_target(proc.pid), run_id=run_id
    )
    fault.inject()
    limited = attempt()
    print(f"process.rlimit nofile=20: {limited}")
    assert limited.startswith("17 ") and "Too many open files" in limited  # 0,1,2 already open
    revert_elsewhere(fault)
    assert resource.prlimit(proc.pid, resource.RLIMIT_NOFILE) == before
    assert attempt() == "100"


