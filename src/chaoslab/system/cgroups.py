"""cgroup v1 and v2 behind one small interface.

Machines have one of three layouts: pure v2 (``/sys/fs/cgroup`` is cgroup2), pure v1, or
hybrid (v1 controllers plus a v2 mount at ``/sys/fs/cgroup/unified``, as on this project's CI).
Each controller is used from the hierarchy that actually has it: a v1 mount when present,
otherwise the v2 tree when the controller is enabled there. The v2 freezer needs no controller.

    g = Group("chaoslab/run-1/api", controllers=["cpu", "memory"])
    g.create(); g.add(pid); g.set_cpu(0.2); ...; g.set_cpu(None); g.remove()
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import CapabilityError

V2 = "unified"
"""Key used for the cgroup v2 hierarchy in maps of controller -> directory."""


@functools.cache
def mounts() -> dict[str, Path]:
    """Controller name -> mount point; the v2 mount under the key ``unified``."""
    out: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or not rfields:
            continue
        mount_point, fstype = Path(fields[4]), rfields[0]
        if fstype == "cgroup2":
            out.setdefault(V2, mount_point)
        elif fstype == "cgroup" and len(rfields) >= 3:
            for opt in rfields[2].split(","):
                if opt in {"cpu", "cpuacct", "memory", "freezer", "blkio", "pids", "cpuset", "devices", "net_cls"}:
                    out.setdefault(opt, mount_point)
    return out


def v2_controllers() -> set[str]:
    root = mounts().get(V2)
    if root is None:
        return set()
    try:
        return set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


_V2_NAME = {"blkio": "io"}


def where(controller: str) -> tuple[Path, int]:
    """Mount point and version (1 or 2) to use for ``controller``, or CapabilityError."""
    m = mounts()
    if controller in m:
        return m[controller], 1
    v2name = _V2_NAME.get(controller, controller)
    if V2 in m and (v2name in v2_controllers() or controller == "freezer"):
        return m[V2], 2
    have = sorted(k for k in m if k != V2) + [f"v2:{c}" for c in sorted(v2_controllers())]
    raise CapabilityError(
        f"the cgroup '{controller}' controller is not available (mounted: {', '.join(have) or 'none'})"
    )


def available(controller: str) -> bool:
    try:
        where(controller)
        return True
    except CapabilityError:
        return False


def cgroups_of(pid: int) -> dict[str, Path]:
    """Controller -> cgroup directory of ``pid`` (v2 under ``unified``)."""
    m = mounts()
    out: dict[str, Path] = {}
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, rel = parts
        if ctrls == "":
            if V2 in m:
                out[V2] = m[V2] / rel.lstrip("/")
            continue
        for c in ctrls.split(","):
            if c in m:
                out[c] = m[c] / rel.lstrip("/")
    return out


def is_root(path: str | Path) -> bool:
    return Path(path) in set(mounts().values())


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _enable_v2(parent: Path, controller: str) -> None:
    """cgroup v2 children only get a controller's knobs once every ancestor delegates it."""
    root = mounts().get(V2)
    chain = [parent, *parent.parents] if root is not None else []
    for d in reversed([p for p in chain if root is not None and (p == root or root in p.parents)]):
        try:
            if controller not in _read(d / "cgroup.subtree_control").split():
                _write(d / "cgroup.subtree_control", f"+{controller}")
        except OSError:
            return  # the write below will fail with the kernel's own reason


class Group:
    """A cgroup directory per hierarchy. Either ours (``create``/``remove``) or a target's own."""

    def __init__(self, relpath: str = "", controllers: Iterable[str] = (), dirs: dict[str, Path] | None = None):
        self.relpath = relpath.strip("/")
        self.dirs: dict[str, Path] = {}
        self.versions: dict[str, int] = {}
        if dirs is not None:
            for ctrl, d in dirs.items():
                self.dirs[ctrl] = Path(d)
                self.versions[ctrl] = 2 if ctrl == V2 else 1
        for c in controllers:
            root, version = where(c)
            self.dirs[c] = root / self.relpath
            self.versions[c] = version

    @classmethod
    def of_pid(cls, pid: int) -> Group:
        return cls(dirs=cgroups_of(pid))

    def _dir(self, controller: str) -> tuple[Path, int]:
        if controller in self.dirs:
            return self.dirs[controller], self.versions[controller]
        if V2 in self.dirs and (controller == "freezer" or _V2_NAME.get(controller, controller) in v2_controllers()):
            return self.dirs[V2], 2
        raise CapabilityError(f"no cgroup for the '{controller}' controller in {self.describe()}")

    def directory(self, controller: str) -> tuple[Path, int]:
        """The directory holding ``controller``'s knobs, and its cgroup version."""
        return self._dir(controller)

    def describe(self) -> str:
        return ", ".join(f"{c}:{d}" for c, d in sorted(self.dirs.items())) or self.relpath

    # -- lifecycle -----------------------------------------------------------------------
    def create(self) -> None:
        for ctrl, d in self.dirs.items():
            if self.versions[ctrl] == 2 and ctrl != V2:
                _enable_v2(d.parent, _V2_NAME.get(ctrl, ctrl))
        for d in set(self.dirs.values()):
            d.mkdir(parents=True, exist_ok=True)
        if "cpuset" in self.dirs and self.versions["cpuset"] == 1:
            d = self.dirs["cpuset"]
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not _read(d / f):
                    _write(d / f, _read(d.parent / f))

    def add(self, pid: int) -> None:
        for d in set(self.dirs.values()):
            _write(d / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in set(self.dirs.values()):
            try:
                out.update(int(x) for x in _read(d / "cgroup.procs").split())
            except OSError:
                pass
        return out

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs.values())

    def remove(self, *, evacuate: bool = True) -> None:
        """Remove the directories; processes still inside move to the parent first."""
        for d in sorted(set(self.dirs.values()), key=lambda p: -len(p.parts)):
            if not d.is_dir():
                continue
            if evacuate:
                for _ in range(50):
                    try:
                        pids = _read(d / "cgroup.procs").split()
                    except OSError:
                        break
                    if not pids:
                        break
                    for pid in pids:
                        try:
                            _write(d.parent / "cgroup.procs", pid)
                        except OSError:
                            pass
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

    # -- knobs (None clears) -------------------------------------------------------------
    def set_cpu(self, cores: float | None, period_us: int = 100_000) -> None:
        d, v = self._dir("cpu")
        if v == 1:
            _write(d / "cpu.cfs_period_us", str(period_us))
            _write(d / "cpu.cfs_quota_us", "-1" if cores is None else str(max(1000, int(cores * period_us))))
        else:
            quota = "max" if cores is None else str(max(1000, int(cores * period_us)))
            _write(d / "cpu.max", f"{quota} {period_us}")

    def cpu_quota(self) -> float | None:
        d, v = self._dir("cpu")
        if v == 1:
            q = int(_read(d / "cpu.cfs_quota_us"))
            return None if q < 0 else q / int(_read(d / "cpu.cfs_period_us"))
        quota, period = _read(d / "cpu.max").split()
        return None if quota == "max" else int(quota) / int(period)

    def set_memory(self, limit: int | None) -> None:
        d, v = self._dir("memory")
        if v == 1:
            _write(d / "memory.limit_in_bytes", "-1" if limit is None else str(limit))
        else:
            _write(d / "memory.max", "max" if limit is None else str(limit))

    def memory_limit(self) -> int | None:
        d, v = self._dir("memory")
        raw = _read(d / ("memory.limit_in_bytes" if v == 1 else "memory.max"))
        if raw == "max" or int(raw) >= 2**62:
            return None
        return int(raw)

    def memory_usage(self) -> int:
        d, v = self._dir("memory")
        return int(_read(d / ("memory.usage_in_bytes" if v == 1 else "memory.current")))

    def oom_kills(self) -> int:
        d, v = self._dir("memory")
        text = _read(d / ("memory.oom_control" if v == 1 else "memory.events"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def set_pids_max(self, n: int | None) -> None:
        d, _ = self._dir("pids")
        _write(d / "pids.max", "max" if n is None else str(n))

    def pids_max(self) -> int | None:
        d, _ = self._dir("pids")
        raw = _read(d / "pids.max")
        return None if raw == "max" else int(raw)

    def set_io(self, device: str, *, rbps: int | None = None, wbps: int | None = None,
               riops: int | None = None, wiops: int | None = None) -> None:
        """Throttle block IO of ``device`` (``major:minor``); all None clears."""
        d, v = self._dir("blkio")
        if v == 1:
            for name, val in (("read_bps", rbps), ("write_bps", wbps), ("read_iops", riops), ("write_iops", wiops)):
                _write(d / f"blkio.throttle.{name}_device", f"{device} {val or 0}")
        else:
            parts = [f"{k}={'max' if val is None else val}" for k, val in
                     (("rbps", rbps), ("wbps", wbps), ("riops", riops), ("wiops", wiops))]
            _write(d / "io.max", f"{device} {' '.join(parts)}")

    def freeze(self, timeout: float = 5.0) -> None:
        d, v = self._dir("freezer")
        if v == 1:
            _write(d / "freezer.state", "FROZEN")
            self._wait(lambda: _read(d / "freezer.state") == "FROZEN", timeout)
        else:
            _write(d / "cgroup.freeze", "1")
            self._wait(lambda: "frozen 1" in _read(d / "cgroup.events"), timeout)

    def thaw(self) -> None:
        d, v = self._dir("freezer")
        if not d.is_dir():
            return
        if v == 1:
            _write(d / "freezer.state", "THAWED")
        else:
            _write(d / "cgroup.freeze", "0")

    def frozen(self) -> bool:
        d, v = self._dir("freezer")
        if v == 1:
            return _read(d / "freezer.state") != "THAWED"
        return _read(d / "cgroup.freeze") == "1"

    @staticmethod
    def _wait(cond: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():  # type: ignore[operator]
                return
            time.sleep(0.001)


def is_root_user() -> bool:
    return os.geteuid() == 0


def prune(dirs: Iterable[Path], levels: int = 1) -> None:
    """Remove each directory and then up to ``levels - 1`` of its ancestors, as long as they are
    empty cgroups; a group still in use by someone else is left alone (rmdir fails, quietly)."""
    for d in dirs:
        for p in [d, *list(d.parents)[: max(0, levels - 1)]]:
            if is_root(p):
                break
            try:
                p.rmdir()
            except OSError:
                break
