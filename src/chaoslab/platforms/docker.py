"""Docker containers and Compose services as targets, through the Docker Engine API (the official
``docker`` SDK, never the CLI).

A container is identified by its id *and* the start time of its current run: a ledger entry made
against one container never acts on a recreated container of the same name (new id), and
container faults check the id before every action. The resolution captures everything faults
need as plain data (``ContainerInfo``): main pid and its start time, the container's own cgroup
directories, its network namespace, addresses, ports and the merged root filesystem.

Compose services are found by the labels Compose puts on their containers
(``com.docker.compose.project`` / ``.service``), which v1 (docker-compose) and v2 (docker compose)
both write, so either works and no Compose binary is needed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CapabilityError, FaultError, TargetError
from ..targets import EventRecorder as _Recorder
from ..targets import Platform, ProcessRef, ResolvedTarget, TargetSpec, parse_mode
from ..targets.docker import PROJECT_LABEL, SERVICE_LABEL, ComposeSelector, ContainerSelector

ONEOFF_LABEL = "com.docker.compose.oneoff"



_lock = threading.Lock()
_client: Any = None


def client() -> Any:
    """One Engine API client per process (``DOCKER_HOST`` or /var/run/docker.sock)."""
    global _client
    with _lock:
        if _client is None:
            try:
                import docker
            except ImportError:
                raise CapabilityError("the docker SDK is not installed", instead="pip install docker") from None
            try:
                c = docker.from_env(timeout=30)
                c.ping()
            except Exception as exc:
                raise CapabilityError(f"Docker is not reachable: {_short(exc)}",
                                      instead="start it with scripts/docker.sh") from None
            _client = c
        return _client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def not_found(exc: BaseException) -> bool:
    import docker.errors

    return isinstance(exc, docker.errors.NotFound)


@dataclass
class ContainerInfo:
    """One container at the instant it was resolved; plain data for the ledger."""

    id: str
    name: str
    started_at: str
    pid: int
    pid_create_time: float
    status: str = "running"
    image: str = ""
    cgroups: dict[str, str] = field(default_factory=dict)
    netns: str | None = None
    """``/proc/<pid>/ns/net``; None for a container on the host's network (its namespace is the host's)."""
    network_mode: str = ""
    addresses: dict[str, str] = field(default_factory=dict)
    """Network name -> IPv4 address."""
    ports: list[dict[str, Any]] = field(default_factory=list)
    """Exposed ports: ``{port, proto, host_ip, host_port}`` (host side only when published)."""
    merged_dir: str | None = None
    restart_policy: str = ""
    project: str | None = None
    service: str | None = None

    @property
    def short(self) -> str:
        return self.id[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerInfo:
        return cls(**data)

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> ContainerInfo:
        from ..system import cgroups

        state = attrs.get("State") or {}
        pid = int(state.get("Pid") or 0)
        create_time = 0.0
        cg: dict[str, str] = {}
        if pid > 0:
            try:
                create_time = ProcessRef.of(pid).create_time
            except Exception:
                pid = 0
            # The main process's cgroups are the container's own (docker/<id> under cgroupfs,
            # docker-<id>.scope under systemd): only keep those that name the container.
            cg = {k: str(v) for k, v in cgroups.cgroups_of(pid).items() if attrs["Id"] in str(v)}
        host_cfg = attrs.get("HostConfig") or {}
        mode = str(host_cfg.get("NetworkMode") or "")
        nets = ((attrs.get("NetworkSettings") or {}).get("Networks")) or {}
        addresses = {n: v["IPAddress"] for n, v in nets.items() if v and v.get("IPAddress")}
        ports: list[dict[str, Any]] = []
        for key, bindings in sorted(((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items()):
            port, _, proto = key.partition("/")
            for b in bindings or [{}]:
                ports.append({"port": int(port), "proto": proto or "tcp",
                              "host_ip": b.get("HostIp") or None,
                              "host_port": int(b["HostPort"]) if b.get("HostPort") else None})
        for key in sorted((attrs.get("Config") or {}).get("ExposedPorts") or {}):
            port, _, proto = key.partition("/")
            if not any(p["port"] == int(port) for p in ports):
                ports.append({"port": int(port), "proto": proto or "tcp", "host_ip": None, "host_port": None})
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        graph = ((attrs.get("GraphDriver") or {}).get("Data")) or {}
        return cls(
            id=attrs["Id"], name=str(attrs.get("Name", "")).lstrip("/"),
            started_at=str(state.get("StartedAt") or ""), pid=pid, pid_create_time=create_time,
            status=str(state.get("Status") or ""),
            image=str((attrs.get("Config") or {}).get("Image") or ""),
            cgroups=cg, netns=None if mode == "host" or pid <= 0 else f"/proc/{pid}/ns/net",
            network_mode=mode, addresses=addresses, ports=ports,
            merged_dir=graph.get("MergedDir"),
            restart_policy=str((host_cfg.get("RestartPolicy") or {}).get("Name") or "no"),
            project=labels.get(PROJECT_LABEL), service=labels.get(SERVICE_LABEL),
        )

    def main_process(self) -> ProcessRef | None:
        return ProcessRef(self.pid, self.pid_create_time, self.name) if self.pid > 0 else None

    def all_processes(self) -> list[ProcessRef]:
        """Every process of the container (its pids cgroup, else the main process)."""
        from pathlib import Path

        d = self.cgroups.get("pids") or self.cgroups.get("freezer") or self.cgroups.get("unified")
        pids: list[int] = []
        if d:
            try:
                pids = sorted({int(x) for x in (Path(d) / "cgroup.procs").read_text().split()})
            except (OSError, ValueError):
                pids = []
        refs = []
        for pid in pids or ([self.pid] if self.pid > 0 else []):
            try:
                refs.append(ProcessRef.of(pid))
            except Exception:
                continue
        return refs


def get(ref: str) -> Any | None:
    """The container object for a name or id, or None when there is none."""
    try:
        return client().containers.get(ref)
    except Exception as exc:
        if not_found(exc):
            return None
        raise TargetError(f"Docker: {_short(exc)}") from None


def same(info: ContainerInfo | dict[str, Any]) -> Any | None:
    """The container ``info`` names, looked up by its full id (never by name): None when it was
    removed, so a recreated container of the same name is never acted on."""
    cid = info.id if isinstance(info, ContainerInfo) else str(info["id"])
    c = get(cid)
    return c if c is not None and c.id == cid else None


def _matching(spec: TargetSpec, name: str) -> tuple[list[dict[str, Any]], str]:
    cl = client()
    if spec.compose is not None:
        sel: ComposeSelector = spec.compose
        labels = [f"{PROJECT_LABEL}={sel.project}"]
        if sel.service:
            labels.append(f"{SERVICE_LABEL}={sel.service}")
        what = f"compose service {sel.project}/{sel.service}" if sel.service else f"compose project {sel.project}"
        found = cl.api.containers(filters={"label": labels, "status": "running"})
        # `docker-compose run` one-off containers are not part of the service
        found = [c for c in found if (c.get("Labels") or {}).get(ONEOFF_LABEL, "False") != "True"]
    elif isinstance(spec.container, ContainerSelector):
        what = f"label {spec.container.label!r}"
        found = cl.api.containers(filters={"label": [spec.container.label], "status": "running"})
    else:
        ref = str(spec.container)
        c = get(ref)
        if c is None:
            raise TargetError(f"target {name!r}: no container named {ref!r}")
        status = c.attrs.get("State", {}).get("Status")
        if status != "running":
            raise TargetError(f"target {name!r}: container {ref!r} is {status}, not running")
        return [c.attrs], f"container {ref!r}"
    out = []
    for summary in found:
        try:
            out.append(cl.api.inspect_container(summary["Id"]))
        except Exception as exc:
            if not not_found(exc):
                raise
    return out, what


def select(items: list[ContainerInfo], mode: str, name: str, what: str) -> list[ContainerInfo]:
    """The blast radius over containers, as for processes: more matches than ``one`` allows is an
    error, never a surprise. Ordered by name so count:N and percent:P are stable."""
    kind, n = parse_mode(mode)
    if not items:
        raise TargetError(f"target {name!r}: no running container matches {what}")
    items = sorted(items, key=lambda c: c.name)
    if kind == "one":
        if len(items) > 1:
            shown = ", ".join(c.name for c in items[:8])
            raise TargetError(f"target {name!r}: {what} matches {len(items)} containers ({shown}) but mode is "
                              "'one'; set mode: all | count:N | percent:P")
        return items
    if kind == "all":
        return items
    if kind == "count":
        if len(items) < n:
            raise TargetError(f"target {name!r}: {what} matches {len(items)} containers, mode asks for {int(n)}")
        return items[: int(n)]
    return items[: max(1, math.ceil(len(items) * n / 100.0))]


def resolve(name: str, spec: TargetSpec) -> ResolvedTarget:
    attrs, what = _matching(spec, name)
    chosen = select([ContainerInfo.of(a) for a in attrs], spec.mode, name, what)
    target = ResolvedTarget(name=name, kind=spec.kind, spec=spec.model_dump(mode="json", exclude_none=True))
    for info in chosen:
        if spec.processes == "all":
            target.processes.extend(info.all_processes())
        else:
            ref = info.main_process()
            if ref is not None:
                target.processes.append(ref)
    if len(chosen) == 1:
        only = chosen[0]
        target.cgroups = dict(only.cgroups)
        target.path = only.merged_dir
        target.address = next(iter(only.addresses.values()), None)
        target.ports = sorted({int(p["port"]) for p in only.ports})
    target.extra = {"containers": [c.to_dict() for c in chosen]}
    return target


def containers_of(target: ResolvedTarget | None) -> list[ContainerInfo]:
    if target is None:
        return []
    return [ContainerInfo.from_dict(c) for c in target.extra.get("containers") or []]


def address_of(ref: str) -> str | None:
    """The first IPv4 address of a running container named ``ref``, or None when none is so named."""
    try:
        c = get(ref)
    except Exception:
        return None
    if c is None:
        return None
    return next(iter(ContainerInfo.of(c.attrs).addresses.values()), None)


_KINDS = ("die", "start", "restart", "oom", "health_status", "kill", "stop", "pause", "unpause")


def _filters(refs: list[str]) -> dict[str, Any]:
    return {"type": "container", "container": refs}


def events(since: float, until: float, refs: list[str]) -> list[dict[str, Any]]:
    """Docker's container events for ``refs`` (ids or names) between two wall-clock times, from
    the daemon's memory of recent events (a few hundred, all containers together)."""
    if not refs:
        return []
    raw = list(client().api.events(since=since, until=until, decode=True, filters=_filters(refs)))
    return parse_events(raw)


def parse_events(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events worth a journal record, deduplicated and in order, as plain fields."""
    cl = client()
    seen: set[tuple[Any, ...]] = set()
    out = []
    for ev in sorted(raw, key=lambda e: int(e.get("timeNano") or 0)):
        action = str(ev.get("Action") or ev.get("status") or "")
        kind, _, detail = action.partition(": ")
        key = (ev.get("timeNano"), ev.get("id"), action)
        if kind not in _KINDS or key in seen:
            continue
        seen.add(key)
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        t = float(ev.get("timeNano", 0)) / 1e9 or float(ev.get("time", 0))
        item: dict[str, Any] = {"time": t, "event": kind, "container": attrs.get("name", ""),
                                "id": str(ev.get("id", ""))[:12]}
        if detail:
            item["status"] = detail.strip()
        if kind == "die" and "exitCode" in attrs:
            item["exit_code"] = int(attrs["exitCode"])
        if kind == "kill" and "signal" in attrs:
            item["signal"] = attrs["signal"]
        if kind == "start":
            item["restart_policy"] = _policy(cl, str(ev.get("id", "")))
        out.append(item)
    return out


class EventRecorder(_Recorder):
    """Docker's events of some containers for the length of a run. The daemon remembers only its
    last few hundred events, all containers together, so on a busy machine a query at the end
    alone could miss some: this streams them while the run goes on, and merges a last query
    (for what was still in flight) when it stops."""

    source = "docker"
    label = "container events"

    def __init__(self, refs: list[str], since: float) -> None:
        self.refs, self.since = refs, since
        self._raw: list[dict[str, Any]] = []
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> EventRecorder:
        self._stream = client().api.events(since=self.since, decode=True, filters=_filters(self.refs))
        self._thread = threading.Thread(target=self._read, name="docker-events", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            for ev in self._stream:
                self._raw.append(ev)
        except Exception:
            return  # closed by stop(), or the daemon went away: the final query still runs

    def stop(self, until: float) -> list[dict[str, Any]]:
        raw = list(self._raw)
        try:
            raw += list(client().api.events(since=self.since, until=until, decode=True, filters=_filters(self.refs)))
        finally:
            if self._stream is not None:
                self._stream.close()
            if self._thread is not None:
                self._thread.join(timeout=2.0)
        return parse_events(raw + list(self._raw))


def _policy(cl: Any, cid: str) -> str | None:
    try:
        return str((cl.api.inspect_container(cid).get("HostConfig") or {}).get("RestartPolicy", {}).get("Name") or "no")
    except Exception:
        return None  # removed since


def doctor_report() -> dict[str, Any]:
    """Whether Docker answers, and what it is: version, storage and cgroup driver and version."""
    try:
        info = client().info()
    except CapabilityError as exc:
        return {"reachable": False, "reason": str(exc)}
    except Exception as exc:
        return {"reachable": False, "reason": _short(exc)}
    return {"reachable": True, "version": info.get("ServerVersion"), "storage_driver": info.get("Driver"),
            "cgroup_driver": info.get("CgroupDriver"), "cgroup_version": info.get("CgroupVersion"),
            "containers_running": info.get("ContainersRunning")}


def network_endpoint(target: ResolvedTarget, fault: str) -> tuple[str, str]:
    """(address, network namespace file) of a one-container target, for nft and tc inside it."""
    infos = containers_of(target)
    if len(infos) != 1:
        raise FaultError(f"{fault}: acts inside one container's network namespace at a time "
                         f"({target.describe()}); use mode: one or one step per container")
    info = infos[0]
    if info.netns is None:
        raise FaultError(f"{fault}: container {info.name} uses the host's network; a rule in its "
                         "namespace would hit the host (target its address and ports instead)")
    ref = info.main_process()
    if ref is None or not ref.alive():
        raise FaultError(f"{fault}: container {info.name} has no running main process (pid {info.pid})")
    addr = next(iter(info.addresses.values()), None)
    if addr is None:
        raise FaultError(f"{fault}: container {info.name} has no IP address (network mode {info.network_mode!r})")
    return addr, info.netns


def peer_address(ref: str) -> str:
    """A peer as an IP address, a running container's name, or a test host's name."""
    import ipaddress

    from ..system import hosts

    try:
        return str(ipaddress.ip_address(ref))
    except ValueError:
        pass
    addr = address_of(ref)
    return addr if addr is not None else hosts.address_of(ref)


def compose_projects_of(service: str) -> list[str]:
    """The Compose projects that have a running service of this name."""
    found = client().api.containers(filters={"label": [f"{SERVICE_LABEL}={service}"], "status": "running"})
    return sorted({str((c.get("Labels") or {}).get(PROJECT_LABEL)) for c in found if (c.get("Labels") or {}).get(PROJECT_LABEL)})


def container_refs(containers: Iterable[dict[str, Any]]) -> set[str]:
    """By id and by name: a container recreated under the same name is reported too."""
    return {ref for c in containers for ref in (c["id"], c["name"])}


def _refs_of(targets: Iterable[ResolvedTarget]) -> list[str]:
    # every target's local containers: a pod's on a local single-node cluster too
    return sorted(container_refs(c for t in targets for c in t.extra.get("containers") or []))


def describe(target: ResolvedTarget) -> str | None:
    containers = target.extra.get("containers") or []
    if not target.extra:
        return None
    if not containers:
        return target.name
    shown = ", ".join(f"{c['name']} {c['id'][:12]} pid {c['pid']}" for c in containers[:5])
    more = f" +{len(containers) - 5}" if len(containers) > 5 else ""
    return f"{target.name} (container {shown}{more})"


def join_container(target: ResolvedTarget, no_container: str) -> list[str]:
    """Every cgroup of the target's one container: a process joining them is one of its own, so
    Docker's CPU, memory, pids and blkio limits apply to it as to the container's (Pumba's
    stress sidecar)."""
    if not target.cgroups and not target.extra.get("containers"):
        raise FaultError(no_container)
    if not target.cgroups:
        raise FaultError(f"a hog joins one container at a time ({target.describe()}); use mode: one")
    return list(target.cgroups.values())


class DockerPlatform(Platform):
    """Containers and Compose services: what faults act on is recorded per container in
    ``extra["containers"]`` (``ContainerInfo``), and with one container its cgroups, root
    filesystem, address and ports are the target's own."""

    name = "docker"
    events_label = "container events"

    def resolve(self, base: ResolvedTarget, spec: TargetSpec, stack_file: str | None) -> ResolvedTarget:
        return resolve(base.name, spec)

    def describe(self, target: ResolvedTarget) -> str | None:
        return describe(target)

    def endpoint(self, target: ResolvedTarget, fault: str) -> tuple[str, str | None]:
        return network_endpoint(target, fault)

    def peer_address(self, ref: str) -> str:
        return peer_address(ref)

    def netns(self, target: ResolvedTarget, fault: str) -> tuple[str | None, str]:
        _, netns = network_endpoint(target, fault)
        return netns, target.name

    def clock_files(self, target: ResolvedTarget) -> list[Path]:
        # The offset file is found through the container's mounts, on the host: it stays
        # writable while the container is stopped, so a revert or recover never depends on it.
        from ..system import faketime

        files: dict[str, Path] = {}
        for info in containers_of(target):
            container = get(info.id)
            if container is None:
                raise TargetError(f"target {target.name!r}: container {info.name} is gone")
            path = faketime.container_offset_file(container.attrs, f"target {target.name!r}")
            if not path.parent.is_dir():
                raise TargetError(f"target {target.name!r}: the offset file's host directory {path.parent} "
                                  "does not exist")
            files[str(path)] = path
        return list(files.values())

    def own_cgroup(self, target: ResolvedTarget) -> str | dict[str, str] | None:
        # one container: its own cgroup (several: each one's, see containers())
        return dict(target.cgroups) or None

    def join_cgroups(self, target: ResolvedTarget, controller: str) -> list[str]:
        return join_container(target, self.no_container(target))

    def containers(self, target: ResolvedTarget) -> list[dict[str, Any]] | None:
        return list(target.extra.get("containers") or [])

    def restart_watch(self, target: ResolvedTarget) -> float | None:
        return 0.5  # Docker makes a container's cgroup anew at each (re)start

    def event_recorder(self, targets: list[ResolvedTarget], since: float) -> EventRecorder | None:
        refs = _refs_of(targets)
        return EventRecorder(refs, since) if refs else None

    def events(self, targets: list[ResolvedTarget], since: float, until: float) -> list[dict[str, Any]]:
        return events(since, until, _refs_of(targets))


PLATFORM = DockerPlatform()
