"""``redis:`` — redis-server in the foreground, its data in the service's state directory."""

from __future__ import annotations

from ..model import Service
from ..plan import HealthPlan, ServicePlan
from .base import Context, Kind, find_binary


class Redis(Kind):
    name = "redis"

    def plan(self, ctx: Context, name: str, svc: Service) -> ServicePlan:
        spec = svc.redis
        assert spec is not None
        binary = find_binary(name, "redis-server", "redis-server")
        data = ctx.service_dir(name)
        argv = [binary, "--port", str(spec.port), "--bind", spec.listen, "--dir", str(data),
                "--daemonize", "no", "--protected-mode", "no", "--logfile", ""]
        if spec.persistence == "none":
            argv += ["--save", "", "--appendonly", "no"]
        elif spec.persistence == "rdb":
            argv += ["--save", "60 1", "--appendonly", "no"]
        else:
            argv += ["--save", "", "--appendonly", "yes", "--appendfsync", spec.appendfsync]
        if spec.maxmemory:
            argv += ["--maxmemory", str(spec.maxmemory)]
        return ServicePlan(
            name=name,
            kind=self.name,
            argv=argv,
            ports=[spec.port],
            health=HealthPlan(
                "tcp", {"host": spec.listen, "port": spec.port, "send": "PING\r\n", "expect": "+PONG"},
                interval=1.0,
            ),
            info={
                "address": f"{spec.listen}:{spec.port}",
                "url": f"redis://{spec.listen}:{spec.port}/0",
                "data_dir": str(data),
            },
        )

    def prepare(self, ctx: Context, plan: ServicePlan) -> None:
        ctx.service_dir(plan.name).mkdir(parents=True, exist_ok=True)
