"""A chaoslab stack file (docs/stack.md): its services are local processes on one loopback, so a
dependency is a ``127.0.0.1:PORT`` in another service's command line or environment, and an edge
that goes to a ``chaoslab-proxy`` link's listen port crosses the fault proxy (which can then add
latency to exactly that edge, or take it down)."""

from __future__ import annotations

import os
from pathlib import Path

from ..stack import build
from . import deps
from .compose import http_hint
from .model import DATABASES, Health, Port, Service, System


def _port(hostport: str) -> int | None:
    tail = hostport.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def load_file(path: Path) -> System:
    loaded = build.load(path)
    model = loaded.model
    system = System("stack", loaded.name, str(path), stack_file=str(path))
    owner: dict[int, str] = {}
    links: dict[int, tuple[str, str, dict[str, str]]] = {}
    upstream_of: list[tuple[str, int, int, dict[str, str]]] = []
    for name, svc in model.services.items():
        kind = svc.kind
        command: list[str] = []
        ports = list(svc.ports)
        health: Health | None = None
        state: list[str] = []
        if kind == "command":
            command = ([svc.command] if isinstance(svc.command, str) else list(svc.command or [])) + list(svc.args)
        elif kind == "postgres" and svc.postgres is not None:
            ports.append(svc.postgres.port)
            state.append(f"a postgres (data in {svc.postgres.data_dir or '<state dir>/' + name + '/data'})")
            health = Health("command", "pg_isready")
        elif kind == "redis" and svc.redis is not None:
            ports.append(svc.redis.port)
            state.append(f"a redis (persistence {svc.redis.persistence})")
            health = Health("tcp", f"127.0.0.1:{svc.redis.port} PING")
        elif kind == "nginx" and svc.nginx is not None:
            ports.append(svc.nginx.port)
            health = Health("http", f"http://127.0.0.1:{svc.nginx.port}/__chaoslab/health")
            command = [s for u in svc.nginx.upstreams.values() for s in u.servers]
        elif kind == "chaoslab-proxy" and svc.chaoslab_proxy is not None:
            proxy = svc.chaoslab_proxy
            ports.append(proxy.port)
            api = f"http://127.0.0.1:{proxy.port}"
            health = Health("http", f"{api}/version")
            for link in proxy.proxies:
                listen, up = _port(link.listen), _port(link.upstream)
                if listen is not None and up is not None:
                    ports.append(listen)
                    upstream_of.append((name, listen, up, {"proxy": link.name, "api": api}))
        if svc.healthcheck is not None:
            hc = svc.healthcheck
            if hc.http is not None:
                health = Health("http", hc.http.url, hc.interval, hc.retries, hc.timeout)
            elif hc.tcp is not None:
                health = Health("tcp", f"{hc.tcp.host}:{hc.tcp.port}", hc.interval, hc.retries, hc.timeout)
            else:
                line = hc.command if isinstance(hc.command, str) else " ".join(hc.command or [])
                health = Health("command", line, hc.interval, hc.retries, hc.timeout)
        words = " ".join([kind, *command[:3]]).lower().replace("/", " ").replace(".", " ").split()
        database = kind if kind in ("postgres", "redis") else None
        if kind == "command" and (database := next((db for db in DATABASES if db in words), None)):
            state.append("a database (command)")
        port_objs = []
        for number in sorted(set(ports)):
            http, url_path = http_hint(number, health)
            if kind in ("postgres", "redis"):
                http = False
            port_objs.append(Port(number, number, "127.0.0.1", http, url_path))
            owner[number] = name
        env = {k: str(v) for k, v in svc.env.items()}
        system.services[name] = Service(
            name=name, target={"service": name}, image=None, command=command, replicas=1,
            restart=svc.restart.policy, health=health, ports=port_objs, state=state, env=env,
            database=database,
        )
        for dep in svc.depends_on:
            system.depends(name, dep, "depends_on")
    for proxy_svc, listen, up, ref in upstream_of:
        if up in owner:
            links[listen] = (proxy_svc, owner[up], ref)
            system.depends(proxy_svc, owner[up], f"proxy link {ref['proxy']}", port=up)
    # a proxy's own listen ports belong to the proxy, but an edge to one goes on to its upstream
    deps.by_loopback_port(system, owner, links)
    return system


def relative(stack_file: str, out_dir: Path) -> str:
    return os.path.relpath(Path(stack_file).resolve(), out_dir.resolve())
