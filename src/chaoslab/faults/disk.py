"""Disk faults: ``disk.fill`` (fill a filesystem to X%), ``disk.io_throttle`` (blkio / io.max on
the device behind a path) and ``io.stress`` (IO workers writing under a path)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from ..errors import FaultError
from ..system import capabilities
from ..system.cgroups import Group
from ..targets.base import FILESYSTEM
from ..units import MAX_IOPS, Size
from . import register
from ._cgroupfault import CgroupFault
from ._hogs import new_token, spawn, stop, temp_dir_for
from .base import Fault, FaultParams
from .settings import HeldSettings, Setting, SettingGone


def usage(path: str | Path) -> tuple[int, int]:
    """(used, usable) bytes of the filesystem holding ``path``, as ``df`` counts them: usable is
    what non-root users can reach (used + available), so ``used / usable`` is df's Use%."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used, used + st.f_bavail * st.f_frsize


class FillParams(FaultParams):
    percent: float = Field(gt=0, lt=100, description="Target usage of the filesystem, as df's Use%.")
    margin: Size = Field(
        0, description="Bytes that always stay free, whatever percent says (default: margin_percent only)."
    )
    margin_percent: float = Field(2.0, ge=0.5, lt=100, description="Share of the filesystem that always stays free.")


@register
class DiskFill(Fault[FillParams]):
    """The fill file (``.chaoslab-fill`` in the path's directory) is one setting with one owner
    (faults/settings.py): overlapping fills of one directory stack, the newest one's level is in
    force, and the file goes when the last one ends. The target usage is capped so at least the
    margin stays free: a disk fill never makes the filesystem full."""

    name = "disk.fill"
    summary = "Fill the filesystem of a path to X% (always leaving a safety margin); removed on revert."
    needs = frozenset({FILESYSTEM})

    def inject(self) -> None:
        if self.target is None or not self.target.path:
            raise FaultError(f"{self.name} needs a path target")
        where = Path(self.target.path)
        if not where.is_dir():
            where = where.parent
        level = FillLevel(where)
        _used, usable = usage(where)
        floor = max(self.params.margin, int(usable * self.params.margin_percent / 100))
        goal = min(int(usable * self.params.percent / 100), usable - floor)
        self.state["dir"] = str(where)
        self.state["file"] = str(level.file)
        self.state["goal_bytes"] = goal
        self.state["capped"] = goal < int(usable * self.params.percent / 100)
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        # A failed fill is released again by the owner: no half fill is left behind.
        held.hold(level, goal)
        try:
            self.state["filled"] = os.stat(level.file).st_blocks * 512
        except FileNotFoundError:
            self.state["filled"] = 0  # already at the goal without a fill

    def revert(self) -> None:
        if "owners" in self.state:
            HeldSettings(self.state, self.run_id).release(FillLevel(self.state["dir"]))
        elif self.state.get("file"):  # a ledger entry written before the fill had an owner
            Path(self.state["file"]).unlink(missing_ok=True)


class FillLevel(Setting):
    """How full the fill file in one directory keeps its filesystem: the value is the goal (bytes
    used, as df counts them), ``None`` means no fill file, the original. Writing a goal grows or
    shrinks the one file until the filesystem's measured usage reaches it."""

    NAME = ".chaoslab-fill"
    _CHUNK = 64 * 1024 * 1024

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.file = self.dir / self.NAME

    @property
    def key(self) -> str:
        return f"fill:{os.path.realpath(self.dir)}"

    def read(self) -> Any:
        if not self.dir.is_dir():
            raise SettingGone(str(self.dir))
        return None

    def write(self, value: Any) -> None:
        if value is None:
            self.file.unlink(missing_ok=True)
            return
        goal = int(value)
        try:
            used, _usable = usage(self.dir)
            if used >= goal and not self.file.exists():
                return
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT, 0o600)
        except FileNotFoundError:
            raise SettingGone(str(self.dir)) from None
        except OSError as exc:
            raise FaultError(f"disk.fill: cannot create {self.file}: {exc.strerror}") from None
        try:
            if used > goal:
                self._shrink(fd, used - goal)
            else:
                self._grow(fd, goal)
        finally:
            os.close(fd)

    def _shrink(self, fd: int, excess: int) -> None:
        block = os.statvfs(self.dir).f_frsize
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - -(-excess // block) * block))  # whole blocks, rounded up

    def _grow(self, fd: int, goal: int) -> None:
        """Allocate in steps, measuring after each: block and metadata overheads differ per
        filesystem, so the measured usage (not the arithmetic) decides when to stop."""
        size = os.fstat(fd).st_size
        block = os.statvfs(self.dir).f_frsize
        for _ in range(10_000):
            used, _usable = usage(self.dir)
            # Whole blocks only, rounded down: the filesystem allocates whole blocks, and
            # rounding up would eat into the margin.
            step = min(goal - used, self._CHUNK) // block * block
            if step <= 0:
                return
            try:
                os.posix_fallocate(fd, size, step)
            except OSError as exc:
                if exc.errno not in (95,):  # EOPNOTSUPP: fall back to writing zeros
                    raise FaultError(f"disk.fill: cannot allocate: {exc.strerror}") from None
                os.lseek(fd, size, os.SEEK_SET)
                os.write(fd, b"\0" * step)
                os.fsync(fd)
            size += step


def block_device(path: str) -> str:
    """``major:minor`` of the whole disk behind ``path`` (throttling applies to disks, not partitions)."""
    st = os.stat(path)
    dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        raise FaultError(f"{path} is on a filesystem without a block device (tmpfs, overlay, ...)")
    sys_dev = Path(f"/sys/dev/block/{major}:{minor}")
    if (sys_dev / "partition").exists():
        return (sys_dev.resolve().parent / "dev").read_text().strip()
    return f"{major}:{minor}"


class IoThrottleParams(FaultParams):
    path: str = Field(description="A file, directory or block device: the disk behind it is throttled.")
    read_bps: Size | None = Field(None, description="Read bytes per second (e.g. 2MiB).")
    write_bps: Size | None = Field(None, description="Write bytes per second.")
    read_iops: int | None = Field(None, ge=1, le=MAX_IOPS, description="Read operations per second.")
    write_iops: int | None = Field(None, ge=1, le=MAX_IOPS, description="Write operations per second.")

    @model_validator(mode="after")
    def _some(self) -> IoThrottleParams:
        if all(v is None for v in (self.read_bps, self.write_bps, self.read_iops, self.write_iops)):
            raise ValueError("give at least one of read_bps, write_bps, read_iops, write_iops")
        return self


@register
class DiskIoThrottle(CgroupFault[IoThrottleParams]):
    """cgroup v1 blkio throttles direct IO only (buffered writes are flushed by the kernel's
    writeback threads, outside the cgroup); cgroup v2 io.max throttles both."""

    name = "disk.io_throttle"
    summary = "Throttle the target's reads/writes (bytes or IOs per second) on the disk behind a path."
    controller = "blkio"

    def _device(self) -> str:
        if "device" not in self.state:
            self.state["device"] = block_device(self.params.path)
        return str(self.state["device"])

    def setting(self, group: Group) -> Setting:
        d, version = group.directory("blkio")
        return IoLimits(d, version, self._device())

    def value(self, group: Group) -> Any:
        p = self.params
        return {"rbps": p.read_bps, "wbps": p.write_bps, "riops": p.read_iops, "wiops": p.write_iops}

    def _inject(self) -> None:
        try:
            self._device()
        except OSError as exc:
            raise FaultError(f"{self.name}: {exc}") from None
        super()._inject()


_V1_FILES = {"rbps": "read_bps", "wbps": "write_bps", "riops": "read_iops", "wiops": "write_iops"}


class IoLimits(Setting):
    """The four IO limits of one device in one cgroup (None = unlimited): v1 blkio.throttle.*,
    v2 one io.max line."""

    def __init__(self, directory: Path | str, version: int, device: str) -> None:
        self.dir, self.version, self.device = Path(directory), int(version), device

    @property
    def key(self) -> str:
        return f"io:{self.dir}:{self.device}"

    def _lines(self, name: str) -> list[str]:
        try:
            return (self.dir / name).read_text().splitlines()
        except FileNotFoundError:
            raise SettingGone(str(self.dir)) from None

    def read(self) -> Any:
        out: dict[str, int | None] = dict.fromkeys(_V1_FILES)
        if self.version == 1:
            for k, f in _V1_FILES.items():
                for line in self._lines(f"blkio.throttle.{f}_device"):
                    dev, _, val = line.partition(" ")
                    if dev == self.device and int(val) > 0:
                        out[k] = int(val)
            return out
        for line in self._lines("io.max"):
            dev, _, rest = line.partition(" ")
            if dev == self.device:
                for part in rest.split():
                    k, _, val = part.partition("=")
                    if k in out and val != "max":
                        out[k] = int(val)
        return out

    def write(self, value: Any) -> None:
        limits = {k: value.get(k) for k in _V1_FILES}
        try:
            if self.version == 1:
                for k, f in _V1_FILES.items():
                    (self.dir / f"blkio.throttle.{f}_device").write_text(f"{self.device} {limits[k] or 0}")
            else:
                parts = " ".join(f"{k}={'max' if v is None else v}" for k, v in limits.items())
                (self.dir / "io.max").write_text(f"{self.device} {parts}")
        except FileNotFoundError:
            raise SettingGone(str(self.dir)) from None


class IoStressParams(FaultParams):
    workers: int = Field(1, ge=1, le=64)
    size: Size = Field(64 * 1024 * 1024, gt=0, description="Bytes each worker writes and rewrites.")


@register
class IoStress(Fault[IoStressParams]):
    """stress-ng ``--hdd`` workers writing into ``.chaoslab-io-<run_id>`` next to the path target;
    the directory is removed on revert."""

    name = "io.stress"
    summary = "Run IO workers that keep writing under a path (stress-ng --hdd)."
    needs = frozenset({FILESYSTEM})

    @classmethod
    def check(cls) -> None:
        capabilities.require("stress-ng")

    def inject(self) -> None:
        if self.target is None or not self.target.path:
            raise FaultError(f"{self.name} needs a path target")
        work = temp_dir_for(self.target.path, self.run_id, "io")
        token = new_token()
        self.state["dir"] = str(work)
        self.state["hog"] = {"pending": True, "token": token, "comm": "stress-ng"}
        self.checkpoint()
        work.mkdir(exist_ok=True)
        argv = ["stress-ng", "--hdd", str(self.params.workers), "--hdd-bytes", str(self.params.size),
                "--temp-path", str(work), "--quiet"]
        # The workers join the target's own cgroups: a container's limits apply to them (a path
        # has none).
        dirs = list(self.target.cgroups.values())
        self.state["hog"] = spawn(argv, cgroup_dirs=dirs, startup=0.2, token=token)
        self.checkpoint()

    def revert(self) -> None:
        hog = self.state.get("hog")
        if hog and ("pid" in hog or "token" in hog):
            stop(hog)
        if self.state.get("dir"):
            shutil.rmtree(self.state["dir"], ignore_errors=True)
