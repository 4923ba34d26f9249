"""``chaoslab-proxy:`` — the chaoslab fault proxy (``python -m chaoslab.proxy serve``).

Links come from a config file or inline ``proxies:`` (written to the service's state directory
as the proxy's JSON config). Their listen ports join the service's ports, so a port already in
use is caught before the start and ``resolve_service`` reports them.
"""

from __future__ import annotations

import importlib.util
import json
import sys

from ..errors import StackError
from ..model import Service
from ..plan import HealthPlan, ServicePlan
from .base import Context, Kind


class Proxy(Kind):
    name = "chaoslab-proxy"

    def plan(self, ctx: Context, name: str, svc: Service) -> ServicePlan:
        spec = svc.chaoslab_proxy
        assert spec is not None
        if importlib.util.find_spec("chaoslab.proxy.__main__") is None:
            raise StackError(
                f"service {name!r}: the chaoslab fault proxy is not installed (no chaoslab.proxy.__main__); "
                "use a command service meanwhile"
            )
        argv = [sys.executable, "-m", "chaoslab.proxy", "serve", "--port", str(spec.port)]
        ports = [spec.port]
        if spec.realtime:
            argv += ["--realtime", str(spec.realtime)]
        if spec.config:
            config = ctx.path(spec.config)
            if not config.is_file():
                raise StackError(f"service {name!r}: proxy config {config} does not exist")
            argv += ["--config", str(config)]
        elif spec.proxies:
            argv += ["--config", str(ctx.service_dir(name) / "proxies.json")]
            for link in spec.proxies:
                port = link.listen.rpartition(":")[2]
                if port.isdigit() and int(port) > 0:
                    ports.append(int(port))
        api = f"http://127.0.0.1:{spec.port}"
        return ServicePlan(
            name=name,
            kind=self.name,
            argv=argv,
            ports=ports,
            health=HealthPlan("http", {"url": f"{api}/version", "method": "GET", "status": [200]}, interval=1.0),
            info={"address": f"127.0.0.1:{spec.port}", "url": api, "api": api, "realtime": spec.realtime,
                  "proxies": {link.name: {"listen": link.listen, "upstream": link.upstream}
                              for link in spec.proxies}},
        )

    def prepare(self, ctx: Context, plan: ServicePlan) -> None:
        spec = ctx.services[plan.name].chaoslab_proxy
        assert spec is not None
        if spec.proxies:
            d = ctx.service_dir(plan.name)
            d.mkdir(parents=True, exist_ok=True)
            (d / "proxies.json").write_text(json.dumps([link.model_dump() for link in spec.proxies], indent=1))
