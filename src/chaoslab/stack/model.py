"""The stack file: services, their kinds, health checks, restart policies and resources.

A service is exactly one of ``command``, ``postgres``, ``redis``, ``nginx`` or ``chaoslab-proxy``
(the kind is the key, like ``image:`` in a compose file), plus the settings every kind shares.
Kind blocks are nested rather than flat so each kind forbids unknown keys of its own and
error locations stay exact (``services.db.postgres.prot: unknown field (did you mean 'port'?)``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..units import Duration, Rate, Size

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
Port = Annotated[int, Field(ge=1, le=65535)]
Argv = str | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


# --- health checks ------------------------------------------------------------------------

class HttpCheck(_Strict):
    url: str
    method: str = "GET"
    status: list[int] = Field(default_factory=lambda: list(range(200, 400)))


class TcpCheck(_Strict):
    port: Port
    host: str = "127.0.0.1"
    send: str | None = Field(None, description="Bytes to send after connecting (e.g. 'PING\\r\\n').")
    expect: str | None = Field(None, description="The reply must start with this.")


class HealthCheck(_Strict):
    """Exactly one of http | tcp | command. Failures inside ``start_period`` do not count."""

    http: HttpCheck | None = Field(None, description="A URL, or {url, method, status}.")
    tcp: TcpCheck | None = Field(None, description="A port, HOST:PORT, or {host, port, send, expect}.")
    command: Argv | None = None
    interval: Duration = 2.0
    timeout: Duration = 1.0
    retries: int = Field(3, ge=1)
    start_period: Duration = 60.0
    start_interval: Duration = Field(0.1, description="Interval until the first success.")

    @field_validator("http", mode="before")
    @classmethod
    def _http(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v

    @field_validator("tcp", mode="before")
    @classmethod
    def _tcp(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"port": v}
        if isinstance(v, str):
            host, _, port = v.rpartition(":")
            if not port.isdigit() or not host:
                raise ValueError(f"expected HOST:PORT or a port number, got {v!r}")
            return {"host": host.strip("[]"), "port": int(port)}
        return v

    @model_validator(mode="after")
    def _one(self) -> HealthCheck:
        given = [k for k in ("http", "tcp", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a healthcheck needs exactly one of http, tcp, command (got {', '.join(given) or 'none'})")
        return self


# --- restart and resources ----------------------------------------------------------------

class Restart(_Strict):
    policy: Literal["no", "on-failure", "always"] = "no"
    backoff: Duration = Field(0.2, description="Delay before the first restart; doubles each time.")
    max_backoff: Duration = 10.0
    max: int | None = Field(None, ge=0, description="Most restarts in total; unset means unlimited.")


class Liveness(_Strict):
    """Restart a service whose health check keeps failing (Kubernetes' liveness probe): a process
    that is up but no longer serves (a dead worker loop, a deadlock) never exits by itself."""

    failing_for: Duration = Field(gt=0, description="How long the health check must fail without a success "
                                                    "before the service is stopped and its restart policy applied.")


class Resources(_Strict):
    cpu: float | None = Field(None, gt=0, description="CPU cores (cgroup quota).")
    memory: Size | None = Field(None, gt=0)
    pids: int | None = Field(None, ge=1)


# --- kinds --------------------------------------------------------------------------------

class PostgresKind(_Strict):
    port: Port
    database: str = "app"
    user: str = "app"
    password: str = "chaoslab"
    max_connections: int = Field(100, ge=1)
    fsync: bool = True
    listen: str = "127.0.0.1"
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)
    data_dir: str | None = Field(None, description="Default: <state dir>/<service>/data.")
    bin_dir: str | None = Field(None, description="Default: the newest /usr/lib/postgresql/*/bin.")


class RedisKind(_Strict):
    port: Port
    persistence: Literal["none", "rdb", "aof"] = "none"
    appendfsync: Literal["always", "everysec", "no"] = "everysec"
    maxmemory: Size | None = None
    listen: str = "127.0.0.1"


class Upstream(_Strict):
    servers: list[str] = Field(min_length=1, description="HOST:PORT of each server.")


class Route(_Strict):
    path: str = "/"
    upstream: str
    rate: Rate | None = Field(None, description="limit_req rate, e.g. 100/s.")
    burst: int = Field(0, ge=0)
    per: Literal["server", "client"] = "server"
    timeout: Duration = 30.0


class NginxKind(_Strict):
    port: Port
    listen: str = "127.0.0.1"
    upstreams: dict[str, Upstream] = Field(description="name -> [HOST:PORT, ...] or {servers: [...]}")
    routes: list[Route] = Field(min_length=1)
    worker_processes: int = Field(1, ge=1)

    @field_validator("upstreams", mode="before")
    @classmethod
    def _upstream_lists(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"servers": u} if isinstance(u, list) else u for k, u in v.items()}
        return v

    @model_validator(mode="after")
    def _known_upstreams(self) -> NginxKind:
        for r in self.routes:
            if r.upstream not in self.upstreams:
                raise ValueError(
                    f"route {r.path!r} names upstream {r.upstream!r}, which is not one of: "
                    f"{', '.join(sorted(self.upstreams))}"
                )
        return self


class ProxyLink(_Strict):
    name: str
    listen: str = Field(description="HOST:PORT the proxy listens on.")
    upstream: str = Field(description="HOST:PORT it forwards to.")
    enabled: bool = True


class ProxyKind(_Strict):
    port: Port = Field(description="Port of the proxy's HTTP API.")
    config: str | None = Field(None, description="Proxy config file, relative to the stack file.")
    proxies: list[ProxyLink] = Field(default_factory=list, description="Links, written to a config file.")
    realtime: int | None = Field(None, ge=1, le=99,
                                 description="Run the proxy at SCHED_FIFO with this priority (falls back with a warning).")

    @model_validator(mode="after")
    def _config_or_proxies(self) -> ProxyKind:
        if self.config and self.proxies:
            raise ValueError("give either config (a file) or proxies (inline), not both")
        return self


# --- services and the stack ---------------------------------------------------------------

Condition = Literal["started", "healthy"]


class DependsOn(_Strict):
    condition: Condition | None = Field(
        None, description="Default: healthy when the dependency has a health check, else started.")


KINDS = ("command", "postgres", "redis", "nginx", "chaoslab-proxy")


class Service(_Strict):
    command: Argv | None = None
    postgres: PostgresKind | None = None
    redis: RedisKind | None = None
    nginx: NginxKind | None = None
    chaoslab_proxy: ProxyKind | None = Field(None, alias="chaoslab-proxy")

    args: list[str] = Field(default_factory=list)
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    cwd: str | None = None
    user: str | None = None
    host: str | None = Field(None, description="A test host (NET/HOST) of `chaoslab hosts`: run in its network namespace.")
    ports: list[Port] = Field(default_factory=list)
    depends_on: dict[str, DependsOn] = Field(
        default_factory=dict, description="[name, ...] or {name: started|healthy}.")
    healthcheck: HealthCheck | None = None
    restart: Restart = Field(default_factory=Restart, description="no | on-failure | always, or {policy, ...}.")
    liveness: Liveness | None = Field(None, description="{failing_for: 10s}: restart on a health check failing that long.")
    resources: Resources = Field(default_factory=Resources)
    logs: str | None = Field(None, description="Log file (stdout and stderr). Default: <state dir>/logs/<service>.log.")
    stop_signal: str | None = None
    stop_grace: Duration = 10.0
    clock: Literal["system", "controllable"] = Field(
        "system", description="controllable: start under libfaketime so clock.skew and clock.drift can move "
                              "this service's own clock (dynamically linked programs only).")

    @field_validator("restart", mode="before")
    @classmethod
    def _restart_policy(cls, v: Any) -> Any:
        return {"policy": v} if isinstance(v, str) else v

    @field_validator("depends_on", mode="before")
    @classmethod
    def _depends_list(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not all(isinstance(d, str) for d in v):
                raise ValueError("expected a list of service names")
            return {d: {} for d in v}
        if isinstance(v, dict):
            return {k: {"condition": c} if isinstance(c, str) else c for k, c in v.items()}
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Service:
        given = [k for k in KINDS if getattr(self, k.replace("-", "_")) is not None]
        if len(given) != 1:
            raise ValueError(f"a service needs exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})")
        return self

    @field_validator("stop_signal")
    @classmethod
    def _signal(cls, v: str | None) -> str | None:
        import signal

        if v is not None:
            name = v.upper() if v.upper().startswith("SIG") else "SIG" + v.upper()
            if not hasattr(signal, name):
                raise ValueError(f"unknown signal {v!r}")
            return name
        return v

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k.replace("-", "_")) is not None)



class StackFile(_Strict):
    name: str | None = Field(None, description="Default: the stack file's directory name.")
    state_dir: str | None = Field(None, description="Default: .chaoslab/stacks/<name>/ next to the stack file.")
    services: dict[str, Service] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise ValueError(f"invalid stack name {v!r} (letters, digits, '.', '_', '-')")
        return v

    @field_validator("services")
    @classmethod
    def _service_names(cls, v: dict[str, Service]) -> dict[str, Service]:
        for name in v:
            if not _NAME_RE.match(name):
                raise ValueError(f"invalid service name {name!r} (letters, digits, '.', '_', '-')")
        return v
