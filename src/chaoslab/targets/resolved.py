"""The resolved target (plain data the ledger stores) and the ``Platform`` it asks for abilities.

A resolved target names its kind; the kind names its platform (targets/base.py ``KINDS``); the
platform object is looked up by that name whenever a fault asks (``target.platform``), so a target
reloaded from the ledger by ``chaoslab recover`` finds it just as well: nothing is pickled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import FaultError, TargetError
from .base import KINDS, PLATFORMS, ProcessRef
from .spec import TargetSpec


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

    @property
    def platform(self) -> Platform:
        """The platform of this target's kind (looked up by name: the ledger stores data only)."""
        return platform_named(KINDS.get(self.kind).platform)

    def can(self, ability: str) -> bool:
        return ability in KINDS.get(self.kind).abilities

    def describe(self) -> str:
        kind = KINDS.find(self.kind)
        own = platform_named(kind.platform).describe(self) if kind is not None else None
        if own is not None:
            return own
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
        """Resolve the same spec again (a restarted service has a new pid), in the same stack
        (several may be up)."""
        stack_file = self.extra.get("stack_file") if self.extra else None
        return resolve(self.name, TargetSpec.model_validate(self.spec), stack_file=stack_file)


# --- platforms -------------------------------------------------------------------------------

class Platform:
    """Where targets live, and what they offer faults. A platform module (chaoslab/platforms/)
    subclasses this and overrides what its kinds' abilities promise. The defaults treat a target
    as processes of this host (its ``processes``, ``address``, ``cgroups``). A step whose target
    lacks an ability the fault needs is refused before a run, by the kinds' abilities.
    """

    name: ClassVar[str] = ""
    events_label: ClassVar[str] = "platform events"
    """What the run's error record names when the platform's events cannot be had."""
    replaces_containers: ClassVar[bool] = False
    """True when the platform may replace a target's container during a fault (new id, new
    cgroup: the kubelet after a crash): cgroup faults then adopt the new ones (``containers_now``)."""

    def resolve(self, base: ResolvedTarget, spec: TargetSpec, stack_file: str | None) -> ResolvedTarget:
        """Fill ``base`` (name, kind and spec set) from what the platform holds now."""
        raise NotImplementedError

    def describe(self, target: ResolvedTarget) -> str | None:
        """The platform's own one-line description, or None for the generic one."""
        return None

    # -- abilities ------------------------------------------------------------------------
    def endpoint(self, target: ResolvedTarget, fault: str) -> tuple[str, str | None]:
        """ADDRESS: (IP address, network namespace: None for this host's)."""
        return target.address or "127.0.0.1", None

    def peer_address(self, ref: str) -> str:
        """A peer of an ADDRESS target (an IP, or a name this platform knows) as an IP address."""
        from ..system import hosts

        return hosts.address_of(ref)

    def netns(self, target: ResolvedTarget, fault: str) -> tuple[str | None, str]:
        """NETNS: (its network namespace, the name to show): a test host's, by default."""
        from ..system import hosts

        host = hosts.find(str(target.spec.get("host") or target.address))
        return host.netns, host.name

    def clock_files(self, target: ResolvedTarget) -> list[Path]:
        """CLOCK: the libfaketime offset files of its processes (started controllable)."""
        from ..system import faketime

        files: dict[str, Path] = {}
        for ref in target.processes:
            path = faketime.require_controllable(ref.pid, f"target {target.name!r}")
            files[str(path)] = path
        return list(files.values())

    def own_cgroup(self, target: ResolvedTarget) -> str | dict[str, str] | None:
        """CGROUPS: a cgroup the target owns, where a fault sets a knob directly: a path relative
        to the hierarchies (a named cgroup), its directories per controller, or None (the fault
        moves its processes into a cgroup of the fault's own)."""
        return None

    def join_cgroups(self, target: ResolvedTarget, controller: str) -> list[str]:
        """CGROUPS: the directories a new process joins to compete with the target (a hog)."""
        from ..system import cgroups

        dirs: dict[str, Path] = {k: Path(v) for k, v in target.cgroups.items()}
        # A process moved into a fault cgroup it shares with a hog has no "own" cgroup for that
        # controller any more: look where it is now instead of falling back to another hierarchy.
        if controller not in dirs:
            live = [r for r in target.processes if r.alive()]
            if not live:
                raise FaultError(f"{target.describe()} has no live process to share a cgroup with")
            dirs = cgroups.cgroups_of(live[0].pid)
        d = dirs.get(controller) or dirs.get(cgroups.V2)
        return [str(d)] if d is not None else []

    def containers(self, target: ResolvedTarget) -> list[dict[str, Any]] | None:
        """CONTAINERS: its local containers as recorded at resolution (``platforms.docker.
        ContainerInfo`` as dicts), or None when the platform has none (its targets are processes)."""
        return None

    def no_container(self, target: ResolvedTarget | None) -> str:
        """Why a container fault found nothing to act on, for a user to read."""
        what = target.describe() if target is not None else "no target"
        return f"{what} has no container to act on"

    def restart_watch(self, target: ResolvedTarget) -> float | None:
        """How often a cgroup fault checks that its setting survived a restart of the target
        (a container's cgroup is made anew at each start), or None."""
        return None

    def containers_now(self, target: ResolvedTarget, cache: dict[str, Any]) -> list[Any]:
        """The containers (``ContainerInfo``) the target runs now, when ``replaces_containers``;
        ``cache`` keeps what the platform needs between calls (a client) for the fault's life."""
        return []

    # -- what the platform saw during a run -----------------------------------------------
    def event_recorder(self, targets: list[ResolvedTarget], since: float) -> EventRecorder | None:
        """A recorder of the platform's own events about ``targets`` for a run, or None."""
        return None

    def events(self, targets: list[ResolvedTarget], since: float, until: float) -> list[dict[str, Any]]:
        """The platform's events about ``targets`` between two wall-clock times (one query)."""
        return []


class EventRecorder:
    """Events a platform saw during a run (wall-clock ``time``, ``event``, fields; a field
    ``<name>_wall`` is another wall-clock time, recorded as ``<name>_t`` on the run's clock),
    from ``start`` to ``stop``; ``source`` names them in the journal."""

    source: str = ""
    label: str = "platform events"

    def start(self) -> EventRecorder:
        return self

    def stop(self, until: float) -> list[dict[str, Any]]:
        return []


def platform_named(name: str) -> Platform:
    platform = PLATFORMS.get(name)
    assert isinstance(platform, Platform), f"platform {name!r} is a {type(platform).__name__}"
    return platform


def platforms() -> list[Platform]:
    """Every registered platform (imports them all: a run asks each for its event recorder)."""
    return [platform_named(name) for name in PLATFORMS.names()]


def resolve(name: str, spec: TargetSpec, *, stack_file: str | None = None) -> ResolvedTarget:
    kind = spec.kind
    base = ResolvedTarget(name=name, kind=kind, spec=spec.model_dump(mode="json", exclude_none=True))
    platform = KINDS.get(kind).platform
    if platform not in PLATFORMS:
        raise TargetError(f"target {name!r}: {kind} targets need the {platform} platform, which is not installed")
    return platform_named(platform).resolve(base, spec, stack_file)
