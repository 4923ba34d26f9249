"""Targets: what a fault or probe acts on, and how a name in an experiment becomes real pids.

A ``TargetSpec`` is what the user wrote (``{process: "nginx: worker", mode: all}``); a
``ResolvedTarget`` is what it meant at one instant: process references that survive pid reuse
(pid + start time), the target's own cgroups, ports, URL, proxy link, path. Resolved targets are
plain data so the fault ledger can store them and ``chaoslab recover`` can act on them later.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import TargetError
from .platforms.docker_spec import ComposeSelector, ContainerSelector
from .registry import Registry
from .units import PID_MAX_LIMIT

TargetKind = Literal[
    "pid", "process", "service", "url", "proxy", "host", "address", "path", "cgroup", "container", "compose", "pod",
    "deployment", "node",
]
_KINDS: tuple[str, ...] = TargetKind.__args__  # type: ignore[attr-defined]


class PodSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    namespace: str = "default"
    selector: str
    seed: int | None = Field(None, ge=0, le=2**53, description="Seed of the random choice of pods (recorded when drawn).")


class DeploymentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = "default"
    name: str


class TargetSpec(BaseModel):
    """One entry of ``targets:``. Exactly one of the kind keys is given."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    pid: int | None = Field(None, gt=1, le=PID_MAX_LIMIT, description="A process id (never 1).")
    process: str | None = Field(None, description="Regular expression matched against the full command line.")
    service: str | None = Field(None, description="A service of the experiment's stack.")
    url: str | None = Field(None, description="An HTTP(S) endpoint.")
    proxy: str | None = Field(None, description="A link (proxy name) of the chaoslab/Toxiproxy fault proxy.")
    host: str | None = Field(None, description="A test host (network namespace) by name.")
    address: str | None = Field(None, description="An IP address (with `port`).")
    path: str | None = Field(None, description="A filesystem path (disk faults).")
    cgroup: str | None = Field(None, description="A cgroup path relative to the hierarchy root.")
    container: str | ContainerSelector | None = Field(
        None, description="A Docker container name or id, or {label: \"k=v\"}: every running container with it.")
    compose: ComposeSelector | None = Field(None, description="The containers of a Compose service {project, service}.")
    pod: PodSelector | None = Field(None, description="Kubernetes pods by namespace and label selector.")
    deployment: DeploymentRef | None = Field(None, description="A Kubernetes deployment.")
    node: str | None = Field(None, description="A Kubernetes node by name.")
    kubeconfig: str | None = Field(None, description="Kubeconfig for pod/deployment/node (default: $KUBECONFIG, ~/.kube/config).")
    context: str | None = Field(None, description="Kubeconfig context (default: its current-context).")

    port: int | None = Field(None, ge=1, le=65535, description="Port for `address`/`host` targets.")
    api: str = Field("http://127.0.0.1:8474", description="Proxy API for `proxy` targets.")
    stack: str | None = Field(None, description="Stack file for `service` (default: the experiment's).")
    mode: str = Field(
        "one",
        description="Blast radius for process and container selectors: one | all | count:N | percent:P.",
    )
    processes: Literal["main", "all"] = Field(
        "main", description="Container targets: process faults act on the main process, or on all of them.")

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        parse_mode(v)
        return v

    @field_validator("process")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetSpec:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            what = ", ".join(given) if given else "none"
            raise ValueError(f"a target needs exactly one of {', '.join(_KINDS)} (got {what})")
        if self.processes != "main" and given[0] not in ("container", "compose"):
            raise ValueError("processes: all is for container and compose targets")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _KINDS if getattr(self, k) is not None)


def parse_mode(mode: str) -> tuple[str, float]:
    """``one`` | ``all`` | ``count:N`` | ``percent:P`` -> (kind, number)."""
    if mode in ("one", "all"):
        return mode, 1.0
    m = re.fullmatch(r"(count|percent):(\d+(?:\.\d+)?)", mode)
    if not m:
        raise ValueError(f"invalid mode {mode!r} (expected one, all, count:N or percent:P)")
    n = float(m.group(2))
    if m.group(1) == "count" and (n < 1 or n != int(n)):
        raise ValueError(f"count must be a whole number >= 1, got {mode!r}")
    if m.group(1) == "percent" and not 0 < n <= 100:
        raise ValueError(f"percent must be in (0, 100], got {mode!r}")
    return m.group(1), n


@dataclass(frozen=True)
class ProcessRef:
    """A process identity that survives pid reuse: pid plus its start time (psutil ``create_time``)."""

    pid: int
    create_time: float
    name: str = ""

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        p = psutil.Process(pid)
        return cls(pid=pid, create_time=p.create_time(), name=p.name())

    def process(self) -> psutil.Process | None:
        """The live process, or None if it exited or its pid now belongs to another process."""
        try:
            p = psutil.Process(self.pid)
            if abs(p.create_time() - self.create_time) > 0.01:
                return None
            return p
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None

    def alive(self) -> bool:
        p = self.process()
        if p is None:
            return False
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False


@dataclass
class ResolvedTarget:
    name: str
    kind: str
    spec: dict[str, Any]
    processes: list[ProcessRef] = field(default_factory=list)
    cgroups: dict[str, str] = field(default_factory=dict)
    """The target's *own* cgroup per controller (absolute directory), when it has one."""
    ports: list[int] = field(default_factory=list)
    url: str | None = None
    address: str | None = None
    path: str | None = None
    proxy: str | None = None
    api: str | None = None
    data_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind in PLATFORM_DESCRIBE and self.extra:
            return PLATFORM_DESCRIBE.get(self.kind)(self)
        if self.processes:
            pids = ",".join(str(p.pid) for p in self.processes[:5])
            more = f"+{len(self.processes) - 5}" if len(self.processes) > 5 else ""
            return f"{self.name} (pid {pids}{more})"
        detail = self.url or self.proxy or self.path or self.address or ""
        return f"{self.name} ({detail})" if detail else self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolvedTarget:
        data = dict(data)
        data["processes"] = [ProcessRef(**p) for p in data.get("processes", [])]
        return cls(**data)

    def refresh(self) -> ResolvedTarget:
        """Resolve the same spec again (a restarted service has a new pid)."""
        return resolve(self.name, TargetSpec.model_validate(self.spec))


# --- resolution ---------------------------------------------------------------------------

def protected_pids() -> set[int]:
    """Processes no fault may touch: PID 1, this process, its ancestors, kernel threads' parent."""
    pids = {0, 1, 2, os.getpid()}
    try:
        for parent in psutil.Process().parents():
            pids.add(parent.pid)
    except psutil.Error:
        pass
    return pids


PF_KTHREAD = 0x00200000
"""The kernel's own mark of a kernel thread (include/linux/sched.h), in /proc/PID/stat's flags."""


def _is_kernel_thread(p: psutil.Process) -> bool:
    # Not "an empty command line": a user process reads as one between fork and exec's new
    # argument area (and one may empty it), and resolving a just-spawned pid refused it.
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(p.pid) from None
    except OSError:
        return False
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        return bool(int(fields[6]) & PF_KTHREAD)  # field 9, flags; fields[0] is field 3
    except (IndexError, ValueError):
        return False


def _guard(pid: int, name: str) -> None:
    if pid in protected_pids():
        raise TargetError(f"target {name!r}: refusing pid {pid} (PID 1, the runner or one of its ancestors)")


def select(pids: list[int], mode: str, name: str, selector: str) -> list[int]:
    """Apply the blast radius. More matches than ``one`` allows is an error, not a surprise."""
    kind, n = parse_mode(mode)
    if not pids:
        raise TargetError(f"target {name!r}: no process matches {selector}")
    pids = sorted(pids)
    if kind == "one":
        if len(pids) > 1:
            shown = ", ".join(map(str, pids[:8]))
            raise TargetError(
                f"target {name!r}: {selector} matches {len(pids)} processes ({shown}) but mode is 'one'; "
                "narrow the pattern or set mode: all | count:N | percent:P"
            )
        return pids
    if kind == "all":
        return pids
    if kind == "count":
        if len(pids) < n:
            raise TargetError(f"target {name!r}: {selector} matches {len(pids)} processes, mode asks for {int(n)}")
        return pids[: int(n)]
    return pids[: max(1, math.ceil(len(pids) * n / 100.0))]


def find_processes(pattern: str) -> list[int]:
    rx = re.compile(pattern)
    protected = protected_pids()
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.pid in protected:
            continue
        cmd = " ".join(p.info.get("cmdline") or [])
        try:
            if not cmd or _is_kernel_thread(p):
                continue
        except psutil.NoSuchProcess:
            continue
        if rx.search(cmd):
            out.append(p.pid)
    return out


def own_cgroups(pid: int) -> dict[str, str]:
    """The cgroups that belong to ``pid`` alone: not a hierarchy root, and holding only ``pid`` and
    its descendants (never the runner). Freezing or limiting such a cgroup touches nothing else."""
    from . import cgroups

    try:
        family = {pid} | {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return {}
    protected = protected_pids()
    out = {}
    for ctrl, path in cgroups.cgroups_of(pid).items():
        if cgroups.is_root(path):
            continue
        try:
            members = {int(x) for x in (path / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            continue
        if members <= family and not members & protected:
            out[ctrl] = str(path)
    return out


def split_address(address: str | None) -> tuple[str | None, int | None]:
    """``127.0.0.1:5433`` -> (``127.0.0.1``, 5433); ``[::1]:6379`` -> (``::1``, 6379); a bare IP stays."""
    if not address:
        return None, None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or (":" in host and not host.startswith("[")):
        return address, None  # a bare IPv4 or IPv6 address
    return host.strip("[]"), int(port)


def resolve(name: str, spec: TargetSpec, *, stack_file: str | None = None) -> ResolvedTarget:
    kind = spec.kind
    base = ResolvedTarget(name=name, kind=kind, spec=spec.model_dump(mode="json", exclude_none=True))
    if kind == "pid":
        assert spec.pid is not None
        _guard(spec.pid, name)
        try:
            p = psutil.Process(spec.pid)
            if _is_kernel_thread(p):
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
        from .stack import resolve_service  # the stack owns its state file

        info = resolve_service(spec.stack or stack_file, spec.service or "")
        if info.get("pid"):
            _guard(int(info["pid"]), name)
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
    if kind == "cgroup":
        base.cgroups = {"*": spec.cgroup or ""}
        return base
    if kind in PLATFORM_RESOLVE:
        return PLATFORM_RESOLVE.get(kind)(base, spec)
    raise TargetError(
        f"target {name!r}: {kind} targets need the Docker/Kubernetes backend, which is not installed yet"
    )


# Targets that live on a platform beyond this host's process table. The platform modules build on
# this module's types and load heavy SDKs, so they are named here and imported on first use.
PLATFORM_RESOLVE: Registry[Callable[[ResolvedTarget, TargetSpec], ResolvedTarget]] = Registry("platform")
PLATFORM_DESCRIBE: Registry[Callable[[ResolvedTarget], str]] = Registry("platform")
for _kind, _module in (("container", "docker"), ("compose", "docker"), ("pod", "kubernetes"),
                       ("deployment", "kubernetes"), ("node", "kubernetes")):
    PLATFORM_RESOLVE.lazy(_kind, f"chaoslab.platforms.{_module}:resolve_target")
    PLATFORM_DESCRIBE.lazy(_kind, f"chaoslab.platforms.{_module}:describe")
