"""What discovery finds, as plain typed data: a ``System`` of services and the edges between them.

Every source (a Compose file, a running Compose project, a stack file, a Kubernetes namespace)
is turned into this one shape, so ``propose`` and the table/JSON output never look at a source's
own format. ``target`` is the experiment-format target that reaches a service on its platform
(``{compose: ...}``, ``{service: ...}``, ``{pod: ...}``): proposals use it as written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Platform = Literal["compose", "stack", "kubernetes"]

#: Images or commands that hold data: a kill of one of these is a data question, not only an
#: availability one.
DATABASES = ("postgres", "mysql", "mariadb", "mongo", "redis", "valkey", "memcached", "cassandra",
             "elasticsearch", "opensearch", "kafka", "zookeeper", "etcd", "minio", "seaweedfs", "weed",
             "rabbitmq", "nats", "tansu", "influxdb", "clickhouse", "cockroach", "consul", "s3")


@dataclass
class Port:
    port: int                                 # the port the service listens on
    published: int | None = None              # where the host reaches it (Compose ports:)
    host: str | None = None                   # the address the host reaches it at
    http: bool | None = None                  # None: could not tell
    path: str | None = None                   # an HTTP path known to answer (from a health check)
    name: str | None = None                   # a Kubernetes port name
    cluster: str | None = None                # Kubernetes: the Service's ClusterIP:port, which answers
                                              # inside the cluster only, so nothing here probes it

    def url(self) -> str | None:
        """An HTTP URL the host can reach, or None."""
        if not self.http or self.host is None:
            return None
        return f"http://{self.host}:{self.published or self.port}{self.path or '/'}"


@dataclass
class Health:
    kind: Literal["http", "tcp", "command"]
    detail: str                               # the URL, HOST:PORT or command line
    interval: float | None = None
    retries: int | None = None
    timeout: float | None = None
    platform_runs_it: bool = True             # Docker/the supervisor/the kubelet run it already


@dataclass
class Dependency:
    source: str                               # the service that depends ...
    target: str                               # ... on this one
    via: str                                  # depends_on, links, env FOO, command, service ...
    port: int | None = None
    proxy: dict[str, Any] | None = None       # {proxy: link, api: URL} when the edge crosses chaoslab's proxy
    timeout_visible: bool = False


@dataclass
class Service:
    name: str
    target: dict[str, Any]                    # the experiment-format target
    image: str | None = None
    command: list[str] = field(default_factory=list)
    replicas: int = 1
    restart: str = "no"                       # no | on-failure | always | unless-stopped | controller
    health: Health | None = None
    ports: list[Port] = field(default_factory=list)
    state: list[str] = field(default_factory=list)    # why it holds state (empty: stateless)
    address: str | None = None                # a fixed address other services can name
    running: int | None = None                # live sources only: containers/pods running now
    faults: list[str] = field(default_factory=list)   # faults of `chaoslab doctor` that act on it here
    env: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)  # live Compose: its containers' names
    host_network: bool = False                # Kubernetes: pods on the node's network, out of reach
                                              # of any NetworkPolicy
    database: str | None = None               # the known database it runs (DATABASES), by image,
                                              # program or stack kind: what its ports speak

    @property
    def stateful(self) -> bool:
        return bool(self.state)


@dataclass
class System:
    platform: Platform
    name: str                                 # the Compose project, stack name or namespace
    source: str                               # what was discovered (a path, compose:P, k8s:NS)
    services: dict[str, Service] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    live: bool = False                        # read from a running system (not only a file)
    stack_file: str | None = None             # stack sources: the file experiments name in `stack:`

    def depends(self, source: str, target: str, via: str, *, port: int | None = None,
                proxy: dict[str, Any] | None = None, timeout_visible: bool = False) -> None:
        """Add an edge once; a second sighting adds its reason to the first."""
        if source == target or target not in self.services:
            return
        for d in self.dependencies:
            if d.source == source and d.target == target:
                if via not in d.via.split(", "):
                    d.via += f", {via}"
                d.port = d.port or port
                d.proxy = d.proxy or proxy
                d.timeout_visible = d.timeout_visible or timeout_visible
                return
        self.dependencies.append(Dependency(source, target, via, port, proxy, timeout_visible))

    def advice(self) -> list[str]:
        """What cannot be tested yet, said rather than skipped."""
        out = []
        for s in self.services.values():
            if s.health is None:
                out.append(f"{s.name}: no health check, so {self.platform} cannot tell when it is unwell; "
                           "probes stand in for it")
            if s.restart == "no":
                out.append(f"{s.name}: no restart policy; nothing brings it back after a crash "
                           "(its kill experiment is expected to find that)")
            if s.replicas < 2:
                out.append(f"{s.name}: a single replica; while it is down, nobody serves in its place")
            if not any(p.http is not None or p.published for p in s.ports) and not s.ports:
                out.append(f"{s.name}: no port known; only its process/container state can be probed")
        for d in self.dependencies:
            if not d.timeout_visible:
                out.append(f"{d.source} -> {d.target}: no timeout visible in {d.source}'s command or "
                           "environment; a hung dependency may hang it too")
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, s in self.services.items():
            data["services"][name]["stateful"] = s.stateful
        data["advice"] = self.advice()
        return data
