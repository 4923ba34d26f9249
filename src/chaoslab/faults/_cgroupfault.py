"""The shape shared by the cgroup faults (cpu.throttle, memory.limit, pids.limit, disk.io_throttle).

Two ways to put a limit on a target:

- the target has a cgroup of its own (a stack ``service``, or a ``cgroup`` target): the knob
  there is a shared setting (``faults.settings``): the fault holds it with its value, and the
  original comes back when the last fault holding it ends, in whatever order they end;
- the target is bare processes (``pid``/``process``): create a fault cgroup
  ``chaoslab-<run_id>-<n>`` (the fault's alone: its knobs need no owner), set the limit there,
  and hold each process's membership of that hierarchy with the fault cgroup as value. When the
  fault ends, each process goes to the cgroup of the next fault still holding it, or back to
  where it was; then the fault cgroup is removed.

Everything revert needs is in ``state`` and checkpointed before the system changes, so a fresh
instance built from the ledger record in another process reverts just as well.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import CapabilityError, FaultError
from ..system import capabilities, cgroups
from ..system.cgroups import Group
from ..targets import ProcessRef
from ..targets.base import CGROUPS, CONTAINERS
from .base import Fault, P
from .settings import HeldSettings, Setting, SettingGone


class CgroupFiles(Setting):
    """One or more knob files of a cgroup, written in the order given (e.g. period before quota)."""

    def __init__(self, directory: Path | str, files: Sequence[str]) -> None:
        self.dir = Path(directory)
        self.files = list(files)

    @property
    def key(self) -> str:
        return f"cgroup:{self.dir}:{'+'.join(self.files)}"

    def read(self) -> Any:
        try:
            return [(self.dir / f).read_text().strip() for f in self.files]
        except FileNotFoundError:
            raise SettingGone(str(self.dir)) from None

    def write(self, value: Any) -> None:
        for f, v in zip(self.files, value, strict=True):
            try:
                with open(self.dir / f, "w") as fh:
                    fh.write(str(v))
            except FileNotFoundError:
                raise SettingGone(str(self.dir)) from None
            except OSError as exc:
                if exc.errno == errno.ENODEV or not self.dir.is_dir():
                    raise SettingGone(str(self.dir)) from None
                raise


class Membership(Setting):
    """Which cgroup of one hierarchy a process (pid + start time) is in; the value is the cgroup
    directory. A cgroup that is gone by the time it is written falls back to its nearest parent."""

    def __init__(self, pid: int, create_time: float, hierarchy: Path | str) -> None:
        self.ref = ProcessRef(int(pid), float(create_time))
        self.hierarchy = Path(hierarchy)

    @property
    def key(self) -> str:
        return f"member:{self.ref.pid}:{self.ref.create_time}:{self.hierarchy}"

    def read(self) -> Any:
        if not self.ref.alive():
            raise SettingGone(f"pid {self.ref.pid}")
        for d in cgroups.cgroups_of(self.ref.pid).values():
            if d == self.hierarchy or self.hierarchy in d.parents:
                return str(d)
        raise SettingGone(f"pid {self.ref.pid} is in no cgroup of {self.hierarchy}")

    def write(self, value: Any) -> None:
        if not self.ref.alive():
            raise SettingGone(f"pid {self.ref.pid}")
        dest = Path(str(value))
        while not dest.is_dir() and self.hierarchy in dest.parents:
            dest = dest.parent
        try:
            with open(dest / "cgroup.procs", "w") as f:
                f.write(str(self.ref.pid))
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise SettingGone(f"pid {self.ref.pid}") from None
            raise


def hierarchy_of(group: Group, controller: str) -> Path:
    """The mount point of the hierarchy that ``group`` uses for ``controller``."""
    d, _ = group.directory(controller)
    for root in cgroups.mounts().values():
        if d == root or root in d.parents:
            return root
    return d.parent


#: How often a busy refusal is tried again (CgroupFault.busy_for).
BUSY_EVERY = 0.05


class CgroupFault(Fault[P]):
    controller: ClassVar[str]
    """cgroup controller the knob belongs to (v1 name: cpu, memory, pids, blkio)."""
    needs = frozenset({CGROUPS})
    busy_for: ClassVar[float] = 0.0
    """How long a value the kernel refuses as busy (EBUSY) is tried again: what is refused now
    may be taken a moment later (memory in use above a limit for a burst)."""
    _platform_cache: dict[str, Any] | None = None
    """What the target's platform keeps between ticks (a cluster's API client)."""

    @classmethod
    def check(cls) -> None:
        capabilities.require("root", f"cgroup.{cls.controller}")

    # -- the knob (subclasses) ----------------------------------------------------------------
    def setting(self, group: Group) -> Setting:
        """The knob of ``group`` this fault changes, as a shared setting."""
        raise NotImplementedError

    def value(self, group: Group) -> Any:
        """The knob's value while this fault is in force (JSON-able)."""
        raise NotImplementedError

    def apply(self, group: Group) -> None:
        """Set the knob in the fault's own cgroup (nobody else's: no owner needed)."""
        self.setting(group).write(self.value(group))

    def refused(self, group: Group, exc: OSError) -> str | None:
        """A clearer message for the kernel refusing the value, or None for the kernel's own."""
        return None

    # -- lifecycle ----------------------------------------------------------------------------
    def inject(self) -> None:
        try:
            self._inject()
        except BaseException:
            self.revert()  # a half-made fault cgroup or a half-set knob is undone at once
            raise

    def _inject(self) -> None:
        if self.target is None:
            raise FaultError(f"{self.name} needs a target")
        if self.target.can(CONTAINERS) and not self.target.cgroups:
            self._inject_each_container()
            return
        own = self._own_group()
        if own is not None:
            self.state["existing"] = _saved(own)
            held = HeldSettings(self.state, self.run_id)
            self.checkpoint()
            self._guard(own, lambda: held.hold(self.setting(own), self.value(own)))
            self.state["existing"]["applied"] = self.setting(own).read()
            return
        refs = [r for r in self.target.processes if r.alive()]
        if not refs:
            raise FaultError(f"{self.name}: {self.target.describe()} has no live process to act on")
        group = self._claim_group()
        self.state["moved"] = [
            {"pid": r.pid, "create_time": r.create_time,
             "from": {k: str(v) for k, v in cgroups.cgroups_of(r.pid).items()}}
            for r in refs
        ]
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        self._guard(group, lambda: self.apply(group))  # limit first: no unthrottled moment once moved
        hierarchy = hierarchy_of(group, self.controller)
        target_dir, _ = group.directory(self.controller)
        for r in refs:
            try:
                held.hold(Membership(r.pid, r.create_time, hierarchy), str(target_dir))
            except SettingGone:
                continue  # exited meanwhile; revert copes
            except OSError as exc:
                raise FaultError(f"{self.name}: cannot move pid {r.pid} into {target_dir}: {exc.strerror or exc}") from None

    def _inject_each_container(self) -> None:
        """``mode: all`` over containers: the knob of each container's own cgroup, each one held
        (its original value recorded) before it changes."""
        assert self.target is not None
        groups = []
        for c in self.target.platform.containers(self.target) or []:
            group = _group_at(c.get("cgroups") or {})
            try:
                group.directory(self.controller)
            except CapabilityError:
                raise FaultError(f"{self.name}: container {c.get('name')} has no {self.controller} cgroup") from None
            groups.append(group)
        if not groups:
            raise FaultError(f"{self.name}: {self.target.platform.no_container(self.target)}")
        self.state["each"] = [_saved(g) for g in groups]
        held = HeldSettings(self.state, self.run_id)
        self.checkpoint()
        for g, info in zip(groups, self.state["each"], strict=True):
            self._guard(g, lambda g=g: held.hold(self.setting(g), self.value(g)))
            info["applied"] = self.setting(g).read()

    # -- containers: Docker recreates a container's cgroup at every restart, and the kubelet
    # replaces a pod's crashed container with a new one (new id, new cgroup) -----------------
    @property
    def interval(self) -> float | None:
        if self.target is None:
            return None
        return self.target.platform.restart_watch(self.target)

    def _groups(self) -> list[tuple[Group, dict[str, Any]]]:
        out = []
        for info in ([self.state["existing"]] if "existing" in self.state else []) + list(self.state.get("each") or []):
            out.append((_restored(info), info))
        return out

    def tick(self) -> bool:
        """A container restarted by its policy (after the OOM kill this fault caused, say) comes
        back in a fresh cgroup with Docker's own settings: put the fault's setting back, so the
        fault lasts its whole duration as the user asked, restarts included. A pod's container
        the kubelet started since (after a crash or an OOM kill) gets the setting too."""
        acted = self._adopt_new_pod_containers()
        for group, info in self._groups():
            try:
                if not group.exists():
                    continue
                current = self.setting(group).read()
                if "applied" not in info:
                    info["applied"] = current
                elif current != info["applied"]:
                    # the knob alone, as held: not ``apply``, which also sets what only the
                    # fault's own cgroups get (memory+swap), and would then block the revert
                    self.setting(group).write(self.value(group))
                    self.state["reapplied"] = int(self.state.get("reapplied", 0)) + 1
                    acted = True
            except (OSError, SettingGone):
                continue  # between the old cgroup's removal and the new one's creation
        return acted

    def _adopt_new_pod_containers(self) -> bool:
        """Hold the setting on the cgroup of each container the target's pods (the same uids)
        run now that the fault has not met yet; recorded in ``state["each"]`` before it changes,
        so the revert, or ``chaoslab recover``, restores it."""
        if (self.target is None or not self.target.can(CONTAINERS) or not self.target.platform.replaces_containers
                or "owners" not in self.state):
            return False
        platform = self.target.platform
        met = self.state.setdefault("pod_containers", [
            {"id": c["id"], "name": c["name"]} for c in self.target.extra.get("containers") or []])
        known = {str(c["id"]) for c in met}
        if self._platform_cache is None:
            self._platform_cache = {}
        try:
            now = platform.containers_now(self.target, self._platform_cache)
        except Exception:  # the API server is away for a moment: try again at the next tick
            return False
        held = HeldSettings(self.state, self.run_id)
        acted = False
        for info in now:
            if info.id in known or not info.cgroups:
                continue
            group = _group_at(info.cgroups)
            entry = _saved(group)
            self.state.setdefault("each", []).append(entry)
            met.append({"id": info.id, "name": info.name})
            self.checkpoint()
            try:
                held.hold(self.setting(group), self.value(group))
                entry["applied"] = self.setting(group).read()
            except (OSError, SettingGone, CapabilityError):
                continue  # gone again, or no such controller: nothing to hold
            self.state["reapplied"] = int(self.state.get("reapplied", 0)) + 1
            acted = True
        return acted

    def _guard(self, group: Group, action: Any) -> None:
        # a refused write leaves nothing held (Owners.hold releases it again), so it is tried as it is
        until = time.monotonic() + self.busy_for
        while True:
            try:
                action()
                return
            except SettingGone:
                raise FaultError(f"{self.name}: the cgroup of {group.describe()} went away") from None
            except OSError as exc:
                if exc.errno == errno.EBUSY and time.monotonic() < until:
                    time.sleep(BUSY_EVERY)
                    continue
                msg = self.refused(group, exc)
                raise FaultError(msg or f"{self.name}: the kernel refused the setting: {exc.strerror or exc}") from None

    def _own_group(self) -> Group | None:
        assert self.target is not None
        # Several containers never get here (each one's own cgroup is used, never a fault
        # cgroup: moving a container's processes out of Docker's cgroup would detach them).
        own = self.target.platform.own_cgroup(self.target)
        if isinstance(own, str):  # a named cgroup
            group = Group(own, controllers=[self.controller])
            if not group.exists():
                raise FaultError(f"{self.name}: cgroup {own!r} does not exist")
            return group
        if own:
            group = _group_at(own)
            try:
                group.directory(self.controller)
            except CapabilityError:
                return None
            return group
        return None

    def _claim_group(self) -> Group:
        """Create ``chaoslab-<run_id>-<n>`` with the first free n (mkdir is the atomic claim)."""
        for n in range(1, 10_000):
            rel = f"chaoslab-{self.run_id}-{n}"
            group = Group(rel, controllers=[self.controller])
            first = next(iter(group.dirs.values()))
            if first.exists():
                continue
            self.state["cgroup"] = {"relpath": rel, "controllers": [self.controller]}
            self.checkpoint()
            try:
                os.mkdir(first)
            except FileExistsError:
                continue
            group.create()
            return group
        raise FaultError(f"{self.name}: no free fault cgroup name for run {self.run_id}")

    def revert(self) -> None:
        if self.state.get("each") and "owners" in self.state:
            held = HeldSettings(self.state, self.run_id)
            for info in self.state["each"]:
                held.release(self.setting(_restored(info)))
        if "existing" in self.state:
            if "owners" in self.state:
                HeldSettings(self.state, self.run_id).release(self.setting(_restored(self.state["existing"])))
            return
        info = self.state.get("cgroup")
        if not info:
            return
        try:
            group = Group(info["relpath"], controllers=info["controllers"])
        except CapabilityError:
            return
        moved = list(self.state.get("moved") or [])
        if "owners" in self.state:
            held = HeldSettings(self.state, self.run_id)
            hierarchy = hierarchy_of(group, self.controller)
            for entry in moved:
                held.release(Membership(int(entry["pid"]), float(entry["create_time"]), hierarchy))
        if not group.exists():
            return
        for pid in group.pids():  # children the target forked while inside follow their parent
            _move(pid, _now_or_before(moved, group), group)
        group.remove(evacuate=True)


def _now_or_before(moved: list[dict[str, Any]], group: Group) -> dict[str, str]:
    """Where the first moved process that is still alive is now, else where it was before."""
    for entry in moved:
        ref = ProcessRef(int(entry["pid"]), float(entry["create_time"]))
        if ref.alive():
            return {k: str(v) for k, v in cgroups.cgroups_of(ref.pid).items()}
    return dict(moved[0]["from"]) if moved else {}


def _is_v2(path: Path) -> bool:
    root = cgroups.mounts().get(cgroups.V2)
    return root is not None and (path == root or root in path.parents)


def _group_at(dirs: dict[str, str]) -> Group:
    """A container's (or service's) own cgroup, one directory per controller, as it is now."""
    paths = {k: Path(v) for k, v in dirs.items()}
    group = Group(dirs=paths)
    group.versions.update({k: (2 if k == cgroups.V2 or _is_v2(v) else 1) for k, v in paths.items()})
    return group


def _saved(group: Group) -> dict[str, Any]:
    """``group`` as fault state (the ledger keeps it for the revert)."""
    return {"dirs": {k: str(v) for k, v in group.dirs.items()}, "versions": dict(group.versions)}


def _restored(info: dict[str, Any]) -> Group:
    """The group ``_saved`` recorded."""
    group = Group(dirs={k: Path(v) for k, v in info["dirs"].items()})
    group.versions.update({k: int(v) for k, v in info["versions"].items()})
    return group


def _move(pid: int, original: dict[str, str], group: Group) -> None:
    """Put ``pid`` back where it was, per hierarchy; the hierarchy root if that cgroup is gone."""
    for ctrl, d in group.dirs.items():
        key = ctrl if group.versions.get(ctrl) == 1 else cgroups.V2
        dest = Path(original.get(key) or d.parent)
        if not dest.is_dir():
            dest = d.parent
        try:
            with open(dest / "cgroup.procs", "w") as f:
                f.write(str(pid))
        except OSError:
            continue  # exited meanwhile
