"""What every service kind provides, and the helpers kinds share.

A kind turns its block of the stack file into a ``ServicePlan`` (argv, default health check,
stop signal, facts for ``resolve_service``) and prepares what must exist before the first start
(an initialised data directory, a generated config file). ``prepare`` is idempotent: a second
``up`` on the same state directory reuses what is there.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import StackError
from ..model import Service
from ..plan import ServicePlan
from ..state import StateDir


@dataclass
class Context:
    stack_dir: Path
    """Directory of the stack file: relative paths in it are relative to this."""
    state: StateDir
    services: dict[str, Service]

    def service_dir(self, name: str) -> Path:
        return self.state.root / name

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.stack_dir / p)


class Kind:
    name = ""

    def plan(self, ctx: Context, name: str, svc: Service) -> ServicePlan:
        raise NotImplementedError

    def prepare(self, ctx: Context, plan: ServicePlan) -> None:
        """Create files the first start needs. Runs in the CLI process, before the supervisor."""


def find_binary(service: str, binary: str, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """Absolute path of ``binary``, or one error naming the Debian package that provides it."""
    found = shutil.which(binary)
    if found:
        return found
    for d in (*extra_dirs, "/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(d) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise StackError(f"service {service!r}: {binary} not found (install the Debian package {package})")


@dataclass
class User:
    name: str
    uid: int
    gid: int
    groups: list[int]
    home: str


def resolve_user(service: str, spec: str) -> User:
    """``name``, ``uid`` or ``name:group``; only root may run a service as another user."""
    name, _, group = spec.partition(":")
    try:
        pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise StackError(f"service {service!r}: no such user {name!r}") from None
    gid = pw.pw_gid
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise StackError(f"service {service!r}: no such group {group!r}") from None
    if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
        raise StackError(f"service {service!r}: running as user {name!r} needs root")
    return User(pw.pw_name, pw.pw_uid, gid, os.getgrouplist(pw.pw_name, gid), pw.pw_dir)


def check_reachable(service: str, path: Path, user: User) -> None:
    """Fail early, with the culprit named, when ``user`` cannot reach ``path`` (e.g. a 0700 /tmp dir)."""
    for d in [*reversed(path.parents), path]:
        try:
            st = d.stat()
        except FileNotFoundError:
            return
        if user.uid == 0 or st.st_uid == user.uid:
            ok = bool(st.st_mode & stat.S_IXUSR) or user.uid == 0
        elif st.st_gid in user.groups or st.st_gid == user.gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise StackError(
                f"service {service!r}: user {user.name!r} cannot reach {path} because {d} is mode "
                f"{stat.S_IMODE(st.st_mode):o}; put the state directory somewhere it can (state_dir:)"
            )


def chown_tree(path: Path, user: User) -> None:
    os.chown(path, user.uid, user.gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), user.uid, user.gid)
