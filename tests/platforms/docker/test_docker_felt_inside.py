"""Cgroup faults, hogs and disk.fill on a container are felt by the container itself: what
``docker exec``, ``docker top`` and ``df`` inside it show, and exact restoration afterwards."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from chaoslab.faults import get
from chaoslab.targets import TargetSpec, resolve

from .conftest import Lab, cgroup_file, inspect


def fault(name: str, container: str, run_id: str, **params: Any) -> Any:
    cls = get(name)
    return cls(
        cls.Params.model_validate(params),
        resolve("t", TargetSpec(container=container)),
        run_id=run_id,
    )


def exec_seconds(container: str, script: str) -> float:
    start = time.monotonic()
    subprocess.run(
        ["docker", "exec", container, "sh", "-c", script],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.monotonic() - start


BUSY = "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done"


def _throttled(cid: str) -> int:
    stat = dict(line.split() for line in cgroup_file(cid, "cpu", "cpu.stat").splitlines())
    return int(stat["nr_throttled"])


def test_cpu_throttle_slows_work_inside(lab: Lab) -> None:
    name, _ = lab.run("cpu", "sleep", "600")
    cid = inspect(name)["Id"]
    quota = cgroup_file(cid, "cpu", "cpu.cfs_quota_us")
    f = fault("cpu.throttle", name, lab.prefix, cores=0.05)
    f.inject()
    try:
        # Measured against the CPU time the work really got, not against an unthrottled run's wall
        # time: on a busy machine that one is slow too, and the ratio between the two shrinks.
        used, periods = int(cgroup_file(cid, "cpuacct", "cpuacct.usage")), _throttled(cid)
        slow = exec_seconds(name, BUSY)
        used = (int(cgroup_file(cid, "cpuacct", "cpuacct.usage")) - used) / 1e9
        periods = _throttled(cid) - periods
    finally:
        f.revert()
    assert periods > 0, "the kernel never throttled the container"
    assert slow > 5 * used, (slow, used)  # 0.05 cores: about 20x, whatever else runs
    assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == quota


def test_pids_limit_makes_exec_fail(lab: Lab) -> None:
    name, _ = lab.run("pids", "sleep", "600")
    cid = inspect(name)["Id"]
    before = cgroup_file(cid, "pids", "pids.max")
    assert (
        subprocess.run(
            ["docker", "exec", name, "sh", "-c", "sleep 0 & wait $!"],
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )
    f = fault("pids.limit", name, lab.prefix, max=1)
    f.inject()
    try:
        # a fork inside the container is refused (moving `docker exec`'s process in is not a fork)
        proc = subprocess.run(
            ["docker", "exec", name, "sh", "-c", "sleep 0 & wait $!"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # (the shell's fork, or the threads of runc's own exec helper, whichever comes first;
        # the latter fails without a word on stderr)
        assert proc.returncode != 0, proc.stdout
    finally:
        f.revert()
    assert cgroup_file(cid, "pids", "pids.max") == before
    assert (
        subprocess.run(
            ["docker", "exec", name, "sh", "-c", "sleep 0 & wait $!"],
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )


def test_hog_shows_in_docker_top_and_fill_in_df(lab: Lab) -> None:
    name, _ = lab.run("hog", "sleep", "600")
    hog = fault("cpu.stress", name, lab.prefix, workers=1, load=20)
    hog.inject()
    try:
        top = subprocess.run(
            ["docker", "top", name, "-o", "pid,args"], capture_output=True, text=True
        ).stdout
        assert (
            str(hog.state["hog"]["pid"]) in top
        )  # Docker counts it as one of the container's processes
    finally:
        hog.revert()
    assert (
        str(hog.state["hog"]["pid"])
        not in subprocess.run(
            ["docker", "top", name, "-o", "pid"], capture_output=True, text=True
        ).stdout
    )

    def used_percent() -> float:
        out = subprocess.run(
            ["docker", "exec", name, "df", "-P", "/"], capture_output=True, text=True
        ).stdout
        used, avail = (int(x) for x in out.splitlines()[1].split()[2:4])
        return used / (used + avail) * 100

    start = used_percent()
    fill = fault("disk.fill", name, lab.prefix, percent=round(start + 0.5, 2))
    fill.inject()
    try:
        assert used_percent() >= start + 0.4  # seen from inside the container
        ls = subprocess.run(
            ["docker", "exec", name, "ls", "-a", "/"], capture_output=True, text=True
        ).stdout
        assert ".chaoslab-fill" in ls
    finally:
        fill.revert()
    assert (
        ".chaoslab-fill"
        not in subprocess.run(
            ["docker", "exec", name, "ls", "-a", "/"], capture_output=True, text=True
        ).stdout
    )
