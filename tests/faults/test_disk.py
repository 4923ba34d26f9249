"""disk.fill reaches the target usage (±1%) on a tmpfs of our own and never passes the margin;
io.stress writes under a path and cleans up; disk.io_throttle slows direct reads of a loop device."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.conftest import Children, audit

from chaoslab.errors import FaultError
from chaoslab.faults.disk import (
    DiskFill,
    DiskIoThrottle,
    FillParams,
    IoStress,
    IoStressParams,
    IoThrottleParams,
    block_device,
    usage,
)
from chaoslab.system import cgroups
from chaoslab.targets import ResolvedTarget

from .conftest import process_target, revert_elsewhere


def path_target(path: Path) -> ResolvedTarget:
    return ResolvedTarget(name="data", kind="path", spec={"path": str(path)}, path=str(path))


def percent(path: Path) -> float:
    used, usable = usage(path)
    return 100.0 * used / usable


def test_fill_reaches_the_target_and_reverts(tmpfs: Path, run_id: str) -> None:
    (tmpfs / "data.bin").write_bytes(b"x" * 5_000_000)  # some existing usage
    start = percent(tmpfs)
    fault = DiskFill(FillParams(percent=60), path_target(tmpfs), run_id=run_id)
    fault.inject()
    reached = percent(tmpfs)
    print(f"disk.fill 60%: {start:.2f}% -> {reached:.2f}%")
    assert abs(reached - 60) <= 1
    assert Path(fault.state["file"]).exists()
    revert_elsewhere(fault)
    assert not Path(fault.state["file"]).exists()
    assert abs(percent(tmpfs) - start) < 0.5
    audit(run_id)


def test_fill_never_passes_the_margin(tmpfs: Path, run_id: str) -> None:
    fault = DiskFill(FillParams(percent=99.5, margin_percent=5), path_target(tmpfs), run_id=run_id)
    fault.inject()
    try:
        reached = percent(tmpfs)
        print(f"disk.fill 99.5% with a 5% margin: stopped at {reached:.2f}%")
        assert fault.state["capped"] is True
        assert 94 <= reached <= 95.0
    finally:
        fault.revert()
    fault.revert()
    assert percent(tmpfs) < 1


def test_fill_with_an_absolute_margin(tmpfs: Path, run_id: str) -> None:
    fault = DiskFill(FillParams(percent=90, margin="20MiB"), path_target(tmpfs), run_id=run_id)
    fault.inject()
    try:
        used, usable = usage(tmpfs)
        assert usable - used >= 20 * 2**20
        assert usable - used < 21 * 2**20
    finally:
        fault.revert()


def test_io_stress_writes_and_cleans_up(tmpfs: Path, run_id: str) -> None:
    fault = IoStress(IoStressParams(workers=1, size="8MiB"), path_target(tmpfs), run_id=run_id)
    IoStress.check()
    fault.inject()
    try:
        work = Path(fault.state["dir"])
        hog = psutil.Process(fault.state["hog"]["pid"])
        time.sleep(1.0)
        written = sum(p.io_counters().write_chars for p in [hog, *hog.children(recursive=True)])
        print(f"io.stress: {written / 2**20:.0f} MiB written in 1 s")
        assert written > 1 * 2**20
        assert work.is_dir()
    finally:
        revert_elsewhere(fault)
    assert not work.exists()
    assert not psutil.pid_exists(hog.pid) or hog.status() == psutil.STATUS_ZOMBIE
    assert list(tmpfs.iterdir()) == []


def test_block_device_of_tmpfs_is_refused(tmpfs: Path) -> None:
    with pytest.raises(FaultError, match="without a block device"):
        block_device(str(tmpfs))


@pytest.fixture
def loopdev(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(32 * 2**20)
    subprocess.run(
        [
            "dd",
            "if=/dev/urandom",
            f"of={image}",
            "bs=1M",
            "count=32",
            "conv=notrunc",
            "status=none",
        ],
        check=True,
    )
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def timed_read(
    children: Children, dev: str, throttle: IoThrottleParams | None, run_id: str
) -> float:
    proc = children.popen(
        [
            "sh",
            "-c",
            f"read x; exec dd if={dev} of=/dev/null bs=64k count=128 iflag=direct status=none",
        ],
        stdin=subprocess.PIPE,
        text=True,
    )
    fault = DiskIoThrottle(throttle, process_target(proc.pid), run_id=run_id) if throttle else None
    if fault:
        fault.inject()
    try:
        t0 = time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
        return time.monotonic() - t0
    finally:
        if fault:
            revert_elsewhere(fault)


def test_io_throttle_slows_direct_reads(children: Children, loopdev: str, run_id: str) -> None:
    free = timed_read(children, loopdev, None, run_id)
    throttled = timed_read(
        children, loopdev, IoThrottleParams(path=loopdev, read_bps="2MiB"), run_id
    )
    print(
        f"disk.io_throttle read_bps=2MiB: 8 MiB direct read {free:.2f}s free, {throttled:.2f}s throttled"
    )
    assert throttled >= 3.0  # 8 MiB at 2 MiB/s is 4 s (the first second may burst)
    assert throttled > 4 * free
    audit(run_id)


@pytest.fixture
def ext4(loopdev: str, tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB ext4 on a loop device: a real filesystem with reserved blocks and metadata."""
    subprocess.run(["mkfs.ext4", "-q", "-F", loopdev], check=True, capture_output=True)
    mnt = tmp_path / "ext4"
    mnt.mkdir()
    subprocess.run(["mount", loopdev, str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_fill_on_ext4_reaches_the_target(ext4: Path, run_id: str) -> None:
    fault = DiskFill(FillParams(percent=80), path_target(ext4), run_id=run_id)
    fault.inject()
    try:
        reached = percent(ext4)
        df = subprocess.run(
            ["df", "--output=pcent", str(ext4)], capture_output=True, text=True
        ).stdout
        print(f"disk.fill 80% on ext4: {reached:.2f}% (df says {df.split()[-1]})")
        assert abs(reached - 80) <= 1
    finally:
        revert_elsewhere(fault)
    assert percent(ext4) < 5


def test_a_refused_setting_leaves_no_fault_cgroup(
    children: Children, tmp_path: Path, run_id: str
) -> None:
    # A block device node for a disk that does not exist: the kernel refuses the throttle.
    node = tmp_path / "nodisk"
    os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(251, 77))
    proc = children.python("import time; time.sleep(60)")
    before = cgroups.cgroups_of(proc.pid)
    fault = DiskIoThrottle(
        IoThrottleParams(path=str(node), read_bps="1MiB"), process_target(proc.pid), run_id=run_id
    )
    with pytest.raises(FaultError, match="kernel refused"):
        fault.inject()
    assert cgroups.cgroups_of(proc.pid) == before
    audit(run_id)
