"""This host: processes, stack services, test hosts and addresses, paths and cgroups.

The platform of the local target kinds (targets/local.py): how a name becomes real pids (the
process table, the stack's state file), and what the targets offer faults beyond the defaults
(``targets.Platform``, which already treats a target as processes of this host): a test host's
namespace, a named cgroup, a service's own cgroups."""

from __future__ import annotations

import os

import psutil

from ..errors import TargetError
from ..system import hosts
from ..system.cgroups import Group
from ..targets import Platform, ProcessRef, ResolvedTarget, TargetSpec
from ..targets.local import (
    find_processes,
    guard,
    is_kernel_thread,
    own_cgroups,
    select,
    split_address,
)


class LocalPlatform(Platform):
    name = "local"

    def resolve(self, base: ResolvedTarget, spec: TargetSpec, stack_file: str | None) -> ResolvedTarget:
        return resolve_local(base, spec, stack_file)

    def endpoint(self, target: ResolvedTarget, fault: str) -> tuple[str, str | None]:
        # A test host's rules go inside its namespace; an address or a service is matched here.
        if target.kind == "host":
            host = hosts.find(str(target.spec.get("host") or target.address))
            return host.address, host.netns
        return super().endpoint(target, fault)

    def own_cgroup(self, target: ResolvedTarget) -> str | dict[str, str] | None:
        # A cgroup target is the cgroup named; a stack service runs in cgroups of its own. A
        # pid's or pattern's cgroups are only where it runs now: faults move it out instead.
        if target.kind == "cgroup":
            return target.cgroups.get("*") or str(target.spec.get("cgroup", ""))
        if target.kind == "service" and target.cgroups:
            return dict(target.cgroups)
        return None

    def join_cgroups(self, target: ResolvedTarget, controller: str) -> list[str]:
        own = self.own_cgroup(target)
        if isinstance(own, str):
            return [str(d) for d in Group(own, controllers=[controller]).dirs.values()]
        return super().join_cgroups(target, controller)


PLATFORM = LocalPlatform()


# --- resolution ------------------------------------------------------------------------------

def resolve_local(base: ResolvedTarget, spec: TargetSpec, stack_file: str | None) -> ResolvedTarget:
    """Fill ``base`` for a local kind from the process table, the stack, or the spec itself."""
    name, kind = base.name, base.kind
    if kind == "pid":
        assert spec.pid is not None
        guard(spec.pid, name)
        try:
            p = psutil.Process(spec.pid)
            if is_kernel_thread(p):
                raise TargetError(f"target {name!r}: pid {spec.pid} is a kernel thread")
            base.processes = [ProcessRef.of(spec.pid)]
            base.cgroups = own_cgroups(spec.pid)
        except psutil.NoSuchProcess:
            raise TargetError(f"target {name!r}: no process with pid {spec.pid}") from None
        return base
    if kind == "process":
        assert spec.process is not None
        pids = select(find_processes(spec.process), spec.mode, name, f"pattern {spec.process!r}")
        refs = []
        for pid in pids:
            try:
                refs.append(ProcessRef.of(pid))
            except psutil.NoSuchProcess:
                continue
        if not refs:
            raise TargetError(f"target {name!r}: the processes matching {spec.process!r} exited")
        base.processes = refs
        if len(refs) == 1:
            base.cgroups = own_cgroups(refs[0].pid)
        return base
    if kind == "service":
        from ..stack import resolve_service  # the stack owns its state file

        info = resolve_service(spec.stack or stack_file, spec.service or "")
        if info.get("pid"):
            guard(int(info["pid"]), name)
            base.processes = [ProcessRef(int(info["pid"]), float(info["create_time"]), spec.service or "")]
        base.cgroups = dict(info.get("cgroups") or {})
        base.ports = list(info.get("ports") or [])
        base.data_dir = info.get("data_dir")
        base.address, port = split_address(info.get("address"))
        if port is not None and port not in base.ports:
            base.ports.append(port)
        base.extra = {k: v for k, v in info.items() if k not in {"pid", "create_time", "cgroups", "ports", "data_dir", "address"}}
        return base
    if kind == "url":
        base.url = spec.url
        return base
    if kind == "proxy":
        base.proxy, base.api = spec.proxy, spec.api
        return base
    if kind in ("address", "host"):
        base.address = spec.address or spec.host
        base.ports = [spec.port] if spec.port else []
        return base
    if kind == "path":
        base.path = os.path.abspath(spec.path or "")
        if not os.path.exists(base.path):
            raise TargetError(f"target {name!r}: path {base.path} does not exist")
        return base
    assert kind == "cgroup", kind
    base.cgroups = {"*": spec.cgroup or ""}
    return base
