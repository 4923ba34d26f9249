"""Which processes a target may name: a kernel thread is refused by the kernel's own flag, a
user process whose command line is empty (mid-exec, or one that emptied it) is not."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from chaoslab.errors import TargetError
from chaoslab.targets import TargetSpec, resolve

# A user process that empties its own command line: PR_SET_MM_MAP with arg_end == arg_start
# (allowed without any capability when the executable is left alone). /proc/PID/cmdline then
# reads empty, as it does for a process between fork and exec's new argument area.
EMPTY_CMDLINE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
names = ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
         "arg_start", "arg_end", "env_start", "env_end")
class MM(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in names] + [
        ("auxv", ctypes.c_void_p), ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]
stat = open("/proc/self/stat").read().rpartition(")")[2].split()
field = lambda n: int(stat[n - 3])
libc.sbrk.restype = ctypes.c_void_p
mm = MM(start_code=field(26), end_code=field(27), start_data=field(45), end_data=field(46),
        start_brk=field(47), brk=libc.sbrk(0), start_stack=field(28), arg_start=field(48),
        arg_end=field(48), env_start=field(50), env_end=field(51), auxv=None, auxv_size=0,
        exe_fd=0xFFFFFFFF)
if libc.prctl(35, 14, ctypes.byref(mm), ctypes.sizeof(mm), 0) != 0:  # PR_SET_MM, PR_SET_MM_MAP
    sys.exit("PR_SET_MM_MAP: errno %d" % ctypes.get_errno())
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def empty_cmdline_process() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", EMPTY_CMDLINE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            pytest.fail(
                f"the helper could not empty its command line: {proc.stderr.read() if proc.stderr else ''}"
            )
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_user_process_with_an_empty_command_line_is_a_valid_target(
    empty_cmdline_process: int,
) -> None:
    pid = empty_cmdline_process
    assert psutil.Process(pid).cmdline() == [], "the helper's command line reads empty"
    t = resolve("v", TargetSpec(pid=pid))
    assert [r.pid for r in t.processes] == [pid]


def test_a_kernel_thread_is_refused() -> None:
    kthreads = [p.pid for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == 2]
    assert kthreads, "a Linux machine runs kernel threads under kthreadd"
    with pytest.raises(TargetError, match=f"pid {kthreads[0]} is a kernel thread"):
        resolve("k", TargetSpec(pid=kthreads[0]))
