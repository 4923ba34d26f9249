"""Starting one service process inside its own cgroup, and killing everything a service left.

The child must be inside its cgroup before it runs a single instruction of the service (postgres
forks at once, and a child forked before the move would stay outside). A tiny ``sh`` trampoline
blocks on a pipe; the supervisor (root) moves its pid into the cgroups, then lets it ``exec`` the
service. That also works when the service runs as another user, who could not move itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from ..system import cgroups, faketime
from ..system.cgroups import Group
from .plan import ServicePlan

_TRAMPOLINE = 'read -r _ <&{fd} || exit 97; exec {fd}<&-; exec "$@"'
CONTROLLERS = ("cpu", "memory", "freezer", "pids", "blkio")


def service_group(stack_cgroup: str, service: str) -> Group | None:
    """The service's own cgroup in every hierarchy we can use, or None when we cannot (not root)."""
    if os.geteuid() != 0:
        return None
    rel = f"{stack_cgroup}/{service}"
    ctrls = [c for c in CONTROLLERS if cgroups.available(c)]
    dirs: dict[str, Path] = {}
    v2 = cgroups.mounts().get(cgroups.V2)
    if v2 is not None:
        dirs[cgroups.V2] = v2 / rel
    if not ctrls and not dirs:
        return None
    return Group(rel, controllers=ctrls, dirs=dirs)


def enable_v2_controllers(group: Group) -> None:
    """On a pure v2 machine, limits need the controllers enabled in every ancestor."""
    v2 = group.dirs.get(cgroups.V2)
    root = cgroups.mounts().get(cgroups.V2)
    wanted = cgroups.v2_controllers() & {"cpu", "memory", "pids", "io"}
    if v2 is None or root is None or not wanted:
        return
    for d in [*reversed(v2.parents), v2]:
        if d == v2 or not str(d).startswith(str(root)):
            continue
        with contextlib.suppress(OSError):
            (d / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))


RT_FILE = "cpu.rt_runtime_us"


def grant_realtime(group: Group) -> str | None:
    """Give a service's cgroup v1 ``cpu`` group the real-time budget still free at each level, so
    that the service may set SCHED_FIFO (with real-time group scheduling a new group has none and
    the kernel refuses). None when done or not needed, else a sentence saying why not; the service
    then falls back to ordinary scheduling and says so.

    All the free budget, not a share: a SCHED_FIFO task over its group's budget is stopped until
    the next period, which is worse than ordinary scheduling; a second real-time service finds none."""
    d = group.dirs.get("cpu")
    if d is None or group.versions.get("cpu") != 1 or not (d / RT_FILE).exists():
        return None
    root = cgroups.where("cpu")[0]
    chain = [p for p in [*reversed(d.parents), d] if root in p.parents]
    for level in chain:
        try:
            parent = int((level.parent / RT_FILE).read_text())
            taken = sum(int((s / RT_FILE).read_text()) for s in level.parent.iterdir()
                        if s.is_dir() and s != level and (s / RT_FILE).exists())
            free = parent - taken if parent >= 0 else 950_000
            if free <= 0:
                return f"no real-time budget left under {level.parent} (cpu.rt_runtime_us taken by its other groups)"
            if int((level / RT_FILE).read_text()) < free:
                (level / RT_FILE).write_text(str(free))
        except (OSError, ValueError) as exc:
            return f"could not give {level} a real-time budget: {exc}"
    return None


def release_realtime(group: Group) -> None:
    """After the service's group is gone: each ancestor keeps only what its remaining groups hold,
    so the budget is free again for Docker's or anyone's real-time groups."""
    d = group.dirs.get("cpu")
    if d is None or group.versions.get("cpu") != 1:
        return
    root = cgroups.where("cpu")[0]
    for level in [p for p in d.parents if root in p.parents]:  # innermost first
        # A group just removed still counts for a moment (its destruction is deferred): the kernel
        # refuses the lower figure with EINVAL until it is gone, so try again for up to 2 s.
        for _ in range(40):
            try:
                held = sum(int((s / RT_FILE).read_text()) for s in level.iterdir() if (s / RT_FILE).exists())
                (level / RT_FILE).write_text(str(held))
                break
            except FileNotFoundError:
                break  # the level went with its last group
            except (OSError, ValueError):
                time.sleep(0.05)


def launch(plan: ServicePlan, group: Group | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(plan.env)
    if "FAKETIME_TIMESTAMP_FILE" in env:
        faketime.ensure_file(Path(env["FAKETIME_TIMESTAMP_FILE"]))
    argv, user = list(plan.argv), plan.uid is not None
    if plan.netns:
        # Entering a namespace needs root, so the user switch comes after it (setpriv).
        if user:
            argv = ["setpriv", f"--reuid={plan.uid}", f"--regid={plan.gid}", "--init-groups", "--", *argv]
            user = False
        argv = ["ip", "netns", "exec", plan.netns, *argv]
    r, w = os.pipe()
    try:
        with open(plan.log, "ab", buffering=0) as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"--- chaoslab stack: starting {plan.name} at {stamp}\n".encode())
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _TRAMPOLINE.format(fd=r), f"chaoslab-{plan.name}", *argv],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=plan.cwd or "/", env=env, start_new_session=True, pass_fds=(r,),
                user=plan.uid if user else None, group=plan.gid if user else None,
                extra_groups=plan.groups if user else None,
            )
        try:
            if group is not None:
                group.add(proc.pid)
        finally:
            os.write(w, b"go\n")
    finally:
        os.close(r)
        os.close(w)
    return proc


def signal_all(pid: int | None, group: Group | None, sig: int) -> None:
    """Send ``sig`` to the service's process group and to everything in its cgroup."""
    targets: set[int] = set()
    if group is not None:
        targets |= group.pids()
    if pid:
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)
    for p in targets:
        with contextlib.suppress(OSError):
            os.kill(p, sig)


def leftovers(pid: int | None, group: Group | None) -> bool:
    """Whether any process of the service is still around (cgroup members or its process group)."""
    if group is not None and group.pids():
        return True
    if pid:
        try:
            os.killpg(pid, 0)
            return True
        except OSError:
            return False
    return False


def kill_leftovers(pid: int | None, group: Group | None, timeout: float = 5.0) -> None:
    if group is not None:
        with contextlib.suppress(Exception):
            group.thaw()
    deadline = time.monotonic() + timeout
    while leftovers(pid, group) and time.monotonic() < deadline:
        signal_all(pid, group, signal.SIGKILL)
        time.sleep(0.02)


def wake(pid: int | None, group: Group | None) -> None:
    """Undo a freeze or SIGSTOP left by a fault, so a stop signal can be acted on."""
    if group is not None:
        with contextlib.suppress(Exception):
            group.thaw()
    signal_all(pid, group, signal.SIGCONT)
