"""The launch plan: what the supervisor runs, as plain JSON-able data.

The stack file is validated and turned into a plan by the CLI process (``kinds``); the
supervisor daemon only reads ``plan.json``, so it never needs the models, and a plan written
once is exactly what every restart uses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class HealthPlan:
    type: str
    """http | tcp | command"""
    target: dict[str, Any]
    interval: float = 2.0
    timeout: float = 1.0
    retries: int = 3
    start_period: float = 60.0
    start_interval: float = 0.1

    def describe(self) -> str:
        t = self.target
        if self.type == "http":
            return f"http {t['url']}"
        if self.type == "tcp":
            return f"tcp {t['host']}:{t['port']}"
        return "command " + " ".join(t["argv"])


@dataclass
class RestartPlan:
    policy: str = "no"
    backoff: float = 0.2
    max_backoff: float = 10.0
    max: int | None = None


@dataclass
class ServicePlan:
    name: str
    kind: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    user: str | None = None
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    netns: str | None = None
    """Network namespace (a test host's) the service and its health checks run in."""
    log: str = ""
    depends: dict[str, str] = field(default_factory=dict)
    health: HealthPlan | None = None
    restart: RestartPlan = field(default_factory=RestartPlan)
    liveness: float | None = None
    """Seconds of failing health checks after which the service is stopped and its restart policy
    applied (the stack file's ``liveness.failing_for``); None: a failing check only marks it unhealthy."""
    resources: dict[str, float | int | None] = field(default_factory=dict)
    stop_signal: str = "SIGTERM"
    stop_grace: float = 10.0
    info: dict[str, Any] = field(default_factory=dict)
    """Extra facts for ``resolve_service``: data_dir, address, dsn, url."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServicePlan:
        data = dict(data)
        if data.get("health") is not None:
            data["health"] = HealthPlan(**data["health"])
        data["restart"] = RestartPlan(**data.get("restart", {}))
        return cls(**data)


@dataclass
class StackPlan:
    name: str
    stack_file: str
    state_dir: str
    cgroup: str
    """cgroup path of the stack relative to each hierarchy root; services live below it."""
    services: dict[str, ServicePlan]
    order: list[str]
    """Dependency order: every service comes after what it depends on."""

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackPlan:
        data = json.loads(path.read_text())
        data["services"] = {k: ServicePlan.from_dict(v) for k, v in data["services"].items()}
        return cls(**data)
