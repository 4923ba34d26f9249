"""The shape shared by the cgroup faults (cpu.throttle, memory.limit, pids.limit, disk.io_throttle).

Two ways to put a limit on a target:

- the target has a cgroup of its own (a stack ``service``, or a ``cgroup`` target): change the
  knob there, after recording its old value, and restore that value on revert;
- the target is bare processes (``pid``/``process``): create a fault cgroup
  ``chaoslab-<run_id>-<n>``, record each process's original cgroups, move the processes in, and
  on revert move them back (the ones still alive, and any children they forked) and remove it.

Everything revert needs is in ``state`` and checkpointed before the system changes, so a fresh
instance built from the ledger record in another process reverts just as well.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from .. import capabilities, cgroups
from ..cgroups import Group
from ..errors import CapabilityError, FaultError
from ..targets import ProcessRef
from .base import Fault, P

CGROUP_TARGETS = frozenset({"pid", "process", "service", "cgroup"})


class CgroupFault(Fault[P]):
    controller: ClassVar[str]
    """cgroup controller the knob belongs to (v1 name: cpu, memory, pids, blkio)."""
    target_kinds = CGROUP_TARGETS

    @classmethod
    def check(cls) -> None:
        capabilities.require("root", f"cgroup.{cls.controller}")

    # -- the knob (subclasses) ----------------------------------------------------------------
    def apply(self, group: Group) -> None:
        raise NotImplementedError

    def read(self, group: Group) -> Any:
        """The knob's current value, JSON-able, for ``restore``."""
        raise NotImplementedError

    def restore(self, group: Group, old: Any) -> None:
        raise NotImplementedError

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
        own = self._own_group()
        if own is not None:
            self.state["existing"] = {"dirs": {k: str(v) for k, v in own.dirs.items()},
                                      "versions": dict(own.versions)}
            self.state["old"] = self.read(own)
            self.checkpoint()
            self._guard(lambda: self.apply(own))
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
        self.checkpoint()
        self._guard(lambda: self.apply(group))  # limit first: no unthrottled moment once moved
        for r in refs:
            try:
                group.add(r.pid)
            except ProcessLookupError:
                continue  # exited meanwhile; revert copes

    def _guard(self, action: Any) -> None:
        try:
            action()
        except OSError as exc:
            raise FaultError(f"{self.name}: the kernel refused the setting: {exc.strerror or exc}") from None

    def _own_group(self) -> Group | None:
        assert self.target is not None
        if self.target.kind == "cgroup":
            rel = self.target.cgroups.get("*") or str(self.target.spec.get("cgroup", ""))
            group = Group(rel, controllers=[self.controller])
            if not group.exists():
                raise FaultError(f"{self.name}: cgroup {rel!r} does not exist")
            return group
        if self.target.kind == "service" and self.target.cgroups:
            dirs = {k: Path(v) for k, v in self.target.cgroups.items()}
            group = Group(dirs=dirs)
            group.versions.update({k: (2 if k == cgroups.V2 or _is_v2(v) else 1) for k, v in dirs.items()})
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
        if "existing" in self.state:
            info = self.state["existing"]
            group = Group(dirs={k: Path(v) for k, v in info["dirs"].items()})
            group.versions.update({k: int(v) for k, v in info["versions"].items()})
            if group.exists():
                try:
                    self.restore(group, self.state.get("old"))
                except OSError:
                    pass  # the cgroup went away with its service meanwhile
            return
        info = self.state.get("cgroup")
        if not info:
            return
        try:
            group = Group(info["relpath"], controllers=info["controllers"])
        except CapabilityError:
            return
        if not group.exists():
            return
        moved = list(self.state.get("moved") or [])
        fallback: dict[str, str] = moved[0]["from"] if moved else {}
        for entry in moved:
            ref = ProcessRef(int(entry["pid"]), float(entry["create_time"]))
            if ref.alive():
                _move(ref.pid, entry["from"], group)
        for pid in group.pids():  # children the target forked while inside
            _move(pid, fallback, group)
        group.remove(evacuate=True)


def _is_v2(path: Path) -> bool:
    root = cgroups.mounts().get(cgroups.V2)
    return root is not None and (path == root or root in path.parents)


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
