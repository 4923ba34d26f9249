"""A Compose file read as written, and a running Compose project read through the Docker SDK.

The file is parsed with chaoslab's own loader (a syntax error names its line), then substituted
the way Compose does it: ``${VAR}``, ``${VAR:-default}`` from the environment and a ``.env`` beside
the file, an unset variable empty, ``$$`` a literal dollar. A running project is found by the
labels Compose v1 and v2 both put on its containers; when its Compose file is still where the
labels say, the file gives what containers do not record (``depends_on``, links), and the
containers give what the file cannot know (addresses, replicas running, the image's own
HEALTHCHECK, which ports really answer HTTP).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
from pathlib import Path
from typing import Any

from ..errors import CapabilityError, InputError
from ..source import load_document
from ..units import parse_duration
from . import deps
from .model import DATABASES, Health, Port, Service, System

_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
#: Ports that speak HTTP when nothing else says (and those that never do).
_HTTP_PORTS = {80, 3000, 5000, 8000, 8008, 8080, 8081, 8082, 8088, 8090, 8091, 8092, 8474, 8888, 9000, 9090}
_NOT_HTTP = {22, 25, 53, 1433, 1521, 2181, 3306, 4222, 5432, 5672, 6379, 9042, 9092, 11211, 27017}
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"


def project_name(path: Path, given: str | None, data: dict[str, Any]) -> str:
    """The project name Compose would use: -p, the file's ``name:``, $COMPOSE_PROJECT_NAME, or
    the directory, normalised as Compose v1 and v2 both do."""
    raw = given or data.get("name") or os.environ.get("COMPOSE_PROJECT_NAME") or path.resolve().parent.name
    return re.sub(r"[^-_a-z0-9]", "", str(raw).lower()) or "default"


def _dotenv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    env_file = path.parent / ".env"
    if env_file.is_file():
        for line in env_file.read_text(errors="replace").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                out[key.strip()] = value.strip().strip("'\"")
    return out


def _substitute(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        def one(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) or m.group(4)
            op, default = m.group(2), m.group(3) or ""
            got = env.get(name)
            if op in (":-", ":?"):
                return got if got else default
            if op in ("-", "?"):
                return got if got is not None else default
            return got or ""
        return _VAR.sub(one, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    return value


def is_compose(data: Any) -> bool:
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return False
    return "version" in data or any(isinstance(s, dict) and ("image" in s or "build" in s)
                                    for s in services.values())


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError:
        return str(value).split()


def _env(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    out = {}
    for item in value or []:
        key, _, v = str(item).partition("=")
        out[key] = v
    return out


def _restart(svc: dict[str, Any]) -> str:
    policy = (svc.get("deploy") or {}).get("restart_policy") or {}
    if policy.get("condition"):
        return {"any": "always", "on-failure": "on-failure", "none": "no"}.get(str(policy["condition"]), "no")
    raw = str(svc.get("restart") or "no")
    return raw.split(":")[0] if raw.split(":")[0] in ("no", "always", "on-failure", "unless-stopped") else "no"


def _seconds(value: Any) -> float | None:
    try:
        return parse_duration(value) if value is not None else None
    except (ValueError, InputError):
        return None


def health_of(test: Any, interval: Any = None, retries: Any = None, timeout: Any = None) -> Health | None:
    """A Compose/Docker health check (``test: [CMD, ...]``, ``[CMD-SHELL, "..."]``, a string)."""
    if not test:
        return None
    argv = _argv(test)
    if argv and argv[0] == "NONE":
        return None
    if argv and argv[0] in ("CMD", "CMD-SHELL"):
        argv = argv[1:]
    line = " ".join(argv)
    http = bool(re.search(r"https?://|\bcurl\b|\bwget\b|\bGET\b", line))
    return Health("http" if http else "command", line, _seconds(interval), int(retries) if isinstance(retries, int) else None,
                  _seconds(timeout))


def http_hint(port: int, health: Health | None) -> tuple[bool | None, str | None]:
    """Does ``port`` speak HTTP, and which path answers, from what the health check sends."""
    if health is not None and health.kind == "http" and str(port) in health.detail:
        m = re.search(rf"https?://[^/\s:]+:{port}(/[^\s\"']*)?", health.detail)
        if m:
            return True, m.group(1) or "/"
        m = re.search(rf"\b{port}\b\D+?(/[\w./-]*)", health.detail)
        return True, m.group(1) if m else None
    if port in _HTTP_PORTS:
        return True, None
    if port in _NOT_HTTP:
        return False, None
    return None, None


def _port_number(text: str) -> int | None:
    text = text.split("/")[0].split("-")[0]
    return int(text) if text.isdigit() else None


def _ports(svc: dict[str, Any], address: str | None, health: Health | None) -> list[Port]:
    out: dict[int, Port] = {}
    for raw in svc.get("ports") or []:
        published: int | None = None
        host_ip: str | None = None
        if isinstance(raw, dict):
            target = _port_number(str(raw.get("target", "")))
            published = _port_number(str(raw.get("published", ""))) if raw.get("published") else None
            host_ip = raw.get("host_ip")
        else:
            parts = str(raw).rsplit(":", 2) if str(raw).count(":") >= 2 else str(raw).split(":")
            target = _port_number(parts[-1])
            if len(parts) >= 2:
                published = _port_number(parts[-2])
            if len(parts) == 3:
                host_ip = parts[0].strip("[]")
        if target is None:
            continue
        host: str | None = host_ip if host_ip and host_ip not in ("0.0.0.0", "::") else "127.0.0.1"
        if published is None:  # an ephemeral host port: only the live project knows it
            host = address
        http, path = http_hint(target, health)
        out[target] = Port(target, published, host, http, path)
    for raw in svc.get("expose") or []:
        target = _port_number(str(raw))
        if target is not None and target not in out:
            http, path = http_hint(target, health)
            out[target] = Port(target, None, address, http, path)
    if health is not None:  # a port the health check talks to is a port the service serves
        for m in re.finditer(r"(?:127\.0\.0\.1|localhost|tcp/127\.0\.0\.1/?)[:/](\d{2,5})\b|\b(\d{4,5})\b", health.detail):
            target = int(m.group(1) or m.group(2))
            if target not in out and 0 < target < 65536:
                http, path = http_hint(target, health)
                out[target] = Port(target, None, address, http, path)
    return [out[k] for k in sorted(out)]


def _known_database(image: str | None, command: list[str]) -> str | None:
    """A database by its image or by the program the command starts (argv[0], or the module of
    ``python -m``), never by any word of a shell script (a proxy's config names its upstreams)."""
    program = [Path(command[0]).name] if command else []
    if len(command) > 2 and command[1] == "-m":
        program.append(command[2])
    if len(command) > 2 and program[0] in ("sh", "bash", "ash") and command[1].startswith("-"):
        # a shell script: the program it ends by exec'ing is the service
        program += [Path(m).name for m in re.findall(r"\bexec\s+(\S+)", command[2])]
    image_name = (image or "").rsplit("/", 1)[-1].split(":")[0]
    words = set(re.split(r"[^a-z0-9]+", " ".join([image_name, *program]).lower()))
    return next((db for db in DATABASES if db in words or f"{db}-server" in program), None)


def _state(svc: dict[str, Any], database: str | None, named: set[str]) -> list[str]:
    out = []
    for raw in svc.get("volumes") or []:
        if isinstance(raw, dict):
            if raw.get("type") == "volume" and not raw.get("read_only"):
                out.append(f"volume {raw.get('source') or '(anonymous)'} at {raw.get('target')}")
            continue
        parts = str(raw).split(":")
        if len(parts) == 1:
            out.append(f"anonymous volume at {parts[0]}")
        elif (parts[0] in named or not parts[0].startswith(("/", ".", "~", "$"))) and "ro" not in parts[2:]:
            out.append(f"volume {parts[0]} at {parts[1]}")
    if database:
        out.append(f"a {database} (image or command)")
    return out


def from_data(data: dict[str, Any], source: str, project: str) -> System:
    """The System a parsed, substituted Compose document describes."""
    system = System("compose", project, source)
    named = set((data.get("volumes") or {}).keys())
    aliases: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []
    for name, svc in data["services"].items():
        if not isinstance(svc, dict):
            raise InputError(f"service {name!r} is not a mapping", file=source, field=f"services.{name}")
        image = svc.get("image") or (f"(built from {svc['build']})" if isinstance(svc.get("build"), str)
                                     else "(built)" if svc.get("build") else None)
        command = _argv(svc.get("entrypoint")) + _argv(svc.get("command"))
        hc = svc.get("healthcheck") or {}
        health = None if hc.get("disable") else health_of(hc.get("test"), hc.get("interval"), hc.get("retries"),
                                                          hc.get("timeout"))
        address = None
        names = {name}
        nets = svc.get("networks")
        if isinstance(nets, dict):
            for net in nets.values():
                if isinstance(net, dict):
                    address = address or net.get("ipv4_address")
                    names.update(str(a) for a in net.get("aliases") or [])
        if svc.get("container_name"):
            names.add(str(svc["container_name"]))
        if svc.get("hostname"):
            names.add(str(svc["hostname"]))
        if address:
            names.add(str(address))
        aliases[name] = names
        replicas = (svc.get("deploy") or {}).get("replicas") or svc.get("scale") or 1
        s = Service(
            name=name, target={}, image=image, command=command, replicas=int(replicas),
            restart=_restart(svc), health=health, address=address, env=_env(svc.get("environment")),
        )
        s.ports = _ports(svc, address, health)
        s.database = _known_database(image, command)
        s.state = _state(svc, s.database, named)
        s.target = target(project, name, s.replicas)
        system.services[name] = s
        deps_on = svc.get("depends_on") or []
        for dep in deps_on if isinstance(deps_on, list) else list(deps_on):
            links.append((name, str(dep)))
        for link in svc.get("links") or []:
            dep, _, alias = str(link).partition(":")
            aliases.setdefault(dep, set()).add(alias or dep)
            links.append((name, f"{dep}\0links"))
    for src, dst in links:
        dep, _, via = dst.partition("\0")
        system.depends(src, dep, via or "depends_on")
    deps.by_name(system, aliases)
    return system


def target(project: str, service: str, replicas: int) -> dict[str, Any]:
    # mode one refuses a service with two containers, so a scaled one is hit one container at a time
    return {"compose": {"project": project, "service": service}, "mode": "one" if replicas < 2 else "count:1"}


def load_file(path: Path, project: str | None = None) -> System:
    doc = load_document(path, substitute=False)
    if not is_compose(doc.data):
        raise InputError("not a Compose file (no services: with an image or build)", file=str(path))
    env = {**_dotenv(path), **os.environ}
    data = _substitute(doc.data, env)
    return from_data(data, str(path), project_name(path, project, data))


# --- a running project ------------------------------------------------------------------------

def _client() -> Any:
    from ..platforms import docker

    try:
        return docker.client()
    except CapabilityError as exc:
        raise InputError(f"{exc.reason}" + (f" ({exc.instead})" if exc.instead else "")) from None


def speaks_http(host: str, port: int, timeout: float = 1.0) -> bool | None:
    """Whether host:port answers an HTTP request (None: nothing answered at all)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: chaoslab\r\n\r\n")
            return s.recv(5) == b"HTTP/"
    except OSError:
        return None


def load_project(project: str) -> System:
    """A running Compose project, through the Docker Engine API."""
    from ..platforms.docker import ONEOFF_LABEL
    from ..targets.docker import PROJECT_LABEL, SERVICE_LABEL

    cl = _client()
    try:
        found = cl.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    except Exception as exc:
        raise InputError(f"Docker did not list the containers of {project!r}: {str(exc).splitlines()[0]}") from None
    found = [c for c in found if (c.labels or {}).get(ONEOFF_LABEL, "False") != "True"]
    if not found:
        raise InputError(f"no running Compose project {project!r} (no container has the label "
                         f"{PROJECT_LABEL}={project})", file=f"compose:{project}")
    by_service: dict[str, list[Any]] = {}
    for c in sorted(found, key=lambda c: c.name):
        by_service.setdefault(c.labels.get(SERVICE_LABEL, c.name), []).append(c)
    system: System | None = None
    labels = found[0].labels
    workdir = Path(labels.get(WORKING_DIR_LABEL) or ".")
    # v1 records the files as given on its command line (relative to where it ran), v2 absolute;
    # the working directory is the first file's own directory
    candidates = [p for cfg in (labels.get(CONFIG_FILES_LABEL) or "").split(",") if cfg.strip()
                  for p in (Path(cfg.strip()), workdir / cfg.strip(), workdir / Path(cfg.strip()).name)]
    for path in candidates:
        if path.is_file():
            try:
                system = load_file(path, project)
                break
            except InputError:
                system = None
    if system is None:
        system = System("compose", project, f"compose:{project}")
    system.source, system.live = f"compose:{project}", True
    aliases: dict[str, set[str]] = {}
    for service, containers in by_service.items():
        attrs = containers[0].attrs
        config, host = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
        s = system.services.get(service) or Service(service, target(project, service, len(containers)))
        s.image = config.get("Image") or s.image
        s.command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])] or s.command
        s.env = {**_env(config.get("Env")), **s.env}
        s.replicas = len(containers)
        s.running = sum(1 for c in containers if c.status == "running")
        s.containers = [c.name for c in containers]
        s.restart = (host.get("RestartPolicy") or {}).get("Name") or "no"
        hc = config.get("Healthcheck") or {}
        if hc.get("Test"):
            s.health = health_of(hc["Test"], (hc.get("Interval") or 0) / 1e9 or None, hc.get("Retries"),
                                 (hc.get("Timeout") or 0) / 1e9 or None)
        nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        names = {service, *(c.name for c in containers)}
        live_address = None
        for net in nets.values():
            live_address = live_address or net.get("IPAddress") or None
            names.update(net.get("Aliases") or [])
        for addr in (s.address, live_address):
            if addr:
                names.add(addr)
        aliases[service] = names
        ports: dict[int, Port] = {p.port: p for p in s.ports}
        for spec, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
            number, _, proto = spec.partition("/")
            if proto != "tcp":
                continue
            p = ports.get(int(number)) or Port(int(number))
            if bindings:
                b = bindings[0]
                p.published = int(b.get("HostPort") or 0) or None
                p.host = b.get("HostIp") if b.get("HostIp") not in (None, "", "0.0.0.0", "::") else "127.0.0.1"
            elif s.address or live_address:
                p.host = s.address or live_address
            ports[p.port] = p
        for p in ports.values():
            if p.host and s.running:
                answer = speaks_http(p.host, p.published or p.port)
                if answer is not None:
                    p.http = answer
                    if answer and p.path is None:
                        p.path = "/"
        s.ports = [ports[k] for k in sorted(ports)]
        for m in attrs.get("Mounts") or []:
            text = f"volume {m.get('Name')} at {m.get('Destination')}"
            if m.get("Type") == "volume" and m.get("RW", True) and not any(m.get("Destination", "") in x for x in s.state):
                s.state.append(text)
        db = s.database = _known_database(s.image, s.command)
        if db and not any(db in x for x in s.state):
            s.state.append(f"a {db} (image or command)")
        s.target = target(project, service, s.replicas)
        system.services[service] = s
    deps.by_name(system, aliases)
    return system
