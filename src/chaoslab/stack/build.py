"""Stack file -> validated model -> launch plan, with line-accurate errors for every mistake."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import CapabilityError
from ..source import Document, load_document
from ..system import faketime
from .kinds import KINDS, Context
from .kinds.base import chown_tree, resolve_user
from .model import HealthCheck, Service, StackFile
from .plan import HealthPlan, RestartPlan, ServicePlan, StackPlan
from .state import StateDir


@dataclass
class Loaded:
    path: Path
    doc: Document
    model: StackFile

    @property
    def name(self) -> str:
        if self.model.name:
            return self.model.name
        base = self.path.parent.name or "stack"
        return re.sub(r"[^A-Za-z0-9_.-]", "-", base).strip("-.") or "stack"

    def default_state_dir(self) -> Path:
        if self.model.state_dir:
            p = Path(self.model.state_dir).expanduser()
            return p if p.is_absolute() else self.path.parent / p
        return self.path.parent / ".chaoslab" / "stacks" / self.name


def load(path: str | os.PathLike[str]) -> Loaded:
    p = Path(path).absolute()
    doc = load_document(p)
    model = doc.validate(StackFile)
    return Loaded(p, doc, model)


def health_plan(hc: HealthCheck) -> HealthPlan:
    target: dict[str, object]
    if hc.http is not None:
        h = hc.http
        kind, target = "http", {"url": h.url, "method": h.method, "status": h.status}
    elif hc.tcp is not None:
        t = hc.tcp
        kind, target = "tcp", {"host": t.host, "port": t.port, "send": t.send, "expect": t.expect}
    else:
        assert hc.command is not None
        argv = ["/bin/sh", "-c", hc.command] if isinstance(hc.command, str) else list(hc.command)
        kind, target = "command", {"argv": argv}
    return HealthPlan(kind, target, interval=hc.interval, timeout=hc.timeout, retries=hc.retries,
                      start_period=hc.start_period, start_interval=hc.start_interval)


def _env(svc: Service) -> dict[str, str]:
    out = {}
    for k, v in svc.env.items():
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def make_plan(loaded: Loaded, state_dir: Path | None = None) -> StackPlan:
    """Validate references between services and turn each into a ``ServicePlan``."""
    doc, model = loaded.doc, loaded.model
    state = StateDir(state_dir or loaded.default_state_dir())
    ctx = Context(stack_dir=loaded.path.parent, state=state, services=model.services)
    plans: dict[str, ServicePlan] = {}
    for name, svc in model.services.items():
        plan = KINDS.get(svc.kind).plan(ctx, name, svc)
        plan.argv = [*plan.argv] if svc.kind == "command" else [*plan.argv, *svc.args]
        plan.env = _env(svc)
        if svc.cwd:
            plan.cwd = str(ctx.path(svc.cwd))
        elif svc.kind == "command":
            plan.cwd = str(ctx.stack_dir)
        if svc.kind == "command":
            # A command keeps its files (a database, a generated config) in the stack's state
            # directory like the built-in kinds do, wherever --state-dir put it.
            plan.env.setdefault("CHAOSLAB_SERVICE_DIR", str(ctx.service_dir(name)))
        if svc.user:
            plan.user = svc.user
        if plan.user:
            user = resolve_user(name, plan.user)
            plan.user, plan.uid, plan.gid, plan.groups = user.name, user.uid, user.gid, user.groups
            plan.env.setdefault("HOME", user.home)
            plan.env.setdefault("USER", user.name)
        if svc.clock == "controllable":
            try:
                plan.env.update(faketime.controllable_env(state.root / "clock" / f"{name}.offset"))
            except CapabilityError as exc:
                raise doc.error(("services", name, "clock"), exc.reason) from None
        plan.ports = sorted({*plan.ports, *svc.ports})
        if svc.host:
            _place_on_host(plan, name, svc.host)
        plan.log = str(ctx.path(svc.logs)) if svc.logs else str(state.logs / f"{name}.log")
        if svc.healthcheck is not None:
            plan.health = health_plan(svc.healthcheck)
        r = svc.restart
        plan.restart = RestartPlan(r.policy, r.backoff, r.max_backoff, r.max)
        if svc.liveness is not None:
            if plan.health is None:
                raise doc.error(("services", name, "liveness"), "liveness needs a healthcheck on the service", key=True)
            plan.liveness = svc.liveness.failing_for
        plan.resources = {"cpu": svc.resources.cpu, "memory": svc.resources.memory, "pids": svc.resources.pids}
        plan.stop_signal = svc.stop_signal or plan.stop_signal
        plan.stop_grace = svc.stop_grace
        plans[name] = plan

    owner: dict[int, str] = {}
    for name, plan in plans.items():
        for port in plan.ports:
            if port in owner:
                raise doc.error(("services", name), f"port {port} is also used by service {owner[port]!r}", key=True)
            owner[port] = name

    for name, svc in model.services.items():
        raw = doc.data["services"][name].get("depends_on")
        for dep, spec in svc.depends_on.items():
            loc: str | int = raw.index(dep) if isinstance(raw, list) else dep
            where = ("services", name, "depends_on", loc)
            if dep not in plans:
                raise doc.error(where, f"unknown service {dep!r} (services: {', '.join(sorted(plans))})")
            if dep == name:
                raise doc.error(where, "a service cannot depend on itself")
            condition = spec.condition
            if condition is None:
                # a plain list means "healthy" where the dependency can tell, "started" otherwise
                condition = "healthy" if plans[dep].health else "started"
            elif condition == "healthy" and plans[dep].health is None:
                raise doc.error(where, f"condition 'healthy' needs a healthcheck on service {dep!r}")
            plans[name].depends[dep] = condition

    order = _order(plans, doc)
    digest = hashlib.sha1(str(state.root).encode()).hexdigest()[:8]
    return StackPlan(
        name=loaded.name,
        stack_file=str(loaded.path),
        state_dir=str(state.root),
        cgroup=f"chaoslab-stack/{loaded.name}-{digest}",
        services={n: plans[n] for n in order},
        order=order,
    )


def _place_on_host(plan: ServicePlan, name: str, ref: str) -> None:
    from ..errors import ChaoslabError
    from ..system.hosts import find
    from .errors import StackError

    try:
        host = find(ref)
    except ChaoslabError as exc:
        raise StackError(f"service {name!r}: {exc}") from None
    plan.netns = host.netns
    plan.info.update(host=ref, host_address=host.address)


def _order(plans: dict[str, ServicePlan], doc: Document) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join([*path[path.index(n):], n])
            raise doc.error(("services", n, "depends_on"), f"dependency cycle: {cycle}")
        state[n] = 1
        for d in plans[n].depends:
            visit(d, [*path, n])
        state[n] = 2
        order.append(n)

    for n in plans:
        visit(n, [])
    return order


def prepare(plan: StackPlan, loaded: Loaded) -> None:
    """Create state, service and log directories and what each kind needs before its first start."""
    state = StateDir(plan.state_dir)
    state.create()
    ctx = Context(stack_dir=loaded.path.parent, state=state, services=loaded.model.services)
    for name, sp in plan.services.items():
        d = ctx.service_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        if sp.uid is not None and sp.kind != "postgres":
            chown_tree(d, resolve_user(name, sp.user or str(sp.uid)))
        Path(sp.log).parent.mkdir(parents=True, exist_ok=True)
        KINDS.get(sp.kind).prepare(ctx, sp)
    plan.save(state.plan)


def describe_argv(argv: list[str]) -> str:
    return shlex.join(argv)
