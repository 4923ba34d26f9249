"""The experiments ``chaoslab init`` proposes for a discovered system, one per fault and target.

Per service: a kill (back within a bound, thanks to its restart policy or controller; without one
the file says it expects a finding), a pause (how long until something notices), a CPU throttle
and a memory limit where doctor says the cgroup is reachable. Per dependency edge: a partition
and, where the edge crosses chaoslab's proxy, latency. Per stateful service: a kill with a
data check, left in ``todo/`` until the user says how to read the data back. Nothing destructive
(no container.remove, no disk.fill) is proposed.

Bounds come from ``measure`` when it ran (the figures are written beside each bound), else they
are defaults and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .measure import Measurement
from .model import Dependency, Service, System

AT = "5s"              # the baseline before the fault
PAUSE = 5.0            # seconds a pause, a throttle, a partition lasts
RECOVERY = {"until": "steady", "max": "30s"}  # ends once recovered (a verdict in seconds), 30 s at most
TTR = 30.0             # default time_to_recovery bound, seconds
LATENCY_FACTOR = 5.0   # p99 under a fault at most this many times the measured baseline's


@dataclass
class Bound:
    key: str
    bound: dict[str, Any]
    why: str


@dataclass
class Proposal:
    file: str
    data: dict[str, Any]
    hypothesis: list[Bound] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    todo: bool = False          # written to todo/ (it needs the user's input), not in the suite


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _secs(v: float) -> str:
    return f"{v:g}s" if v >= 1 else f"{round(v * 1000)}ms"


#: A request each known database answers before any login, and the start of its answer: a connect
#: alone is completed by the kernel even while the server is frozen (paused, SIGSTOPped).
GREETINGS: dict[str, tuple[str, str]] = {
    "redis": ("PING\r\n", r"\+PONG"),
    "valkey": ("PING\r\n", r"\+PONG"),
    "postgres": ("\x00\x00\x00\x08\x04\xd2\x16\x2f", "[SN]"),  # SSLRequest: one byte, S or N
    "memcached": ("version\r\n", "VERSION"),
    # Kafka ApiVersions v0, correlation id 1, client "x": the answer's size, then that id
    "kafka": ("\x00\x00\x00\x0b\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01x", r"(?s).{4}\x00\x00\x00\x01"),
}
GREETINGS["tansu"] = GREETINGS["kafka"]


def probes_for(system: System, s: Service) -> dict[str, dict[str, Any]]:
    """What watches one service: what the platform knows of it, and each port it serves."""
    out: dict[str, dict[str, Any]] = {}
    reachable = [p for p in s.ports if p.host]
    for p in reachable:
        port = p.published or p.port
        if p.http:
            spec: dict[str, Any] = {"http": {"url": f"http://{p.host}:{port}{p.path or '/'}"}}
            if not p.path or p.path == "/":
                # nothing says which path answers 2xx: any answer but a server error is "up"
                spec["expect"] = {"status": [200, 201, 204, 301, 302, 304, 401, 403, 404]}
            out[f"{s.name}-http-{port}"] = {**spec, "every": "500ms", "timeout": "1s"}
        else:
            tcp: dict[str, Any] = {"host": p.host, "port": port}
            if s.database in GREETINGS:
                tcp["send"], tcp["reply"] = GREETINGS[s.database]
            out[f"{s.name}-tcp-{port}"] = {"tcp": tcp, "every": "500ms", "timeout": "1s"}
    signal = not out  # the platform's own view is the signal only when nothing else watches
    if system.platform == "compose":
        out[f"{s.name}-container"] = {"container": {"target": s.name}, "every": "500ms", "timeout": "2s",
                                      "signal": signal}
    elif system.platform == "stack":
        out[f"{s.name}-process"] = {"process": {"target": s.name}, "every": "500ms", "signal": signal}
    else:
        pod = s.target["pod"]
        out[f"{s.name}-pods"] = {"pods": {"namespace": pod["namespace"], "selector": pod["selector"]},
                                 "every": "1s", "timeout": "5s", "signal": signal}
    return out


def _measured(m: Measurement | None, probe: str) -> str:
    if m is None or probe not in m.probes:
        return ""
    return m.probes[probe].summary()


class _Builder:
    def __init__(self, system: System, load_url: str | None, measurement: Measurement | None,
                 stack_ref: str | None) -> None:
        self.system, self.load_url, self.m, self.stack_ref = system, load_url, measurement, stack_ref
        self.out: list[Proposal] = []

    def experiment(self, what: str, title: str, description: str, targets: dict[str, Any],
                   probes: dict[str, Any], method: list[dict[str, Any]], hypothesis: list[Bound],
                   header: list[str] | None = None, todo: bool = False, extra: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"title": title, "description": description,
                                "tags": ["generated", "chaoslab-init", self.system.platform]}
        if self.stack_ref:
            data["stack"] = self.stack_ref
        data["targets"] = targets
        if self.load_url:
            data["load"] = {"http": {"url": self.load_url, "method": "GET", "rate": "20/s", "timeout": "2s"}}
            hypothesis = [*hypothesis, *self.load_bounds()]
        data["probes"] = probes
        data["method"] = method
        data["recovery"] = dict(RECOVERY)
        data.update(extra or {})
        data["max_duration"] = "3m"
        n = len([p for p in self.out if p.todo == todo]) + 1
        self.out.append(Proposal(f"{n:02d}-{_slug(what)}.yaml", data, hypothesis, header or [], todo))

    def load_bounds(self) -> list[Bound]:
        m = self.m.load if self.m is not None else None
        if m is None or m.p99 is None:
            return [Bound("error_rate.baseline", {"max": 0.01}, "default: not measured (init --measure 60s)"),
                    Bound("error_rate.recovery", {"max": 0.05}, "default: not measured")]
        err = max(0.01, round(2 * m.error_rate, 4))
        p99 = max(LATENCY_FACTOR * m.p99, m.p99 + 0.05)
        return [
            Bound("error_rate.baseline", {"max": err}, f"measured {m.error_rate:.2%} errors over {m.ops} "
                  f"requests in {m.seconds:g}s; bound max(1%, 2x)"),
            Bound("latency.p99.recovery", {"max": _secs(round(p99, 3))}, f"measured p99 {m.p99 * 1000:.1f} ms; "
                  f"bound {LATENCY_FACTOR:g}x (or +50 ms)"),
        ]

    def probe_bounds(self, probes: dict[str, Any], phase: str) -> list[Bound]:
        """Each measured HTTP/TCP probe: as available in ``phase`` as it was, and p99 within K x."""
        out = []
        for name in probes:
            if self.m is None or name not in self.m.probes:
                continue
            pm = self.m.probes[name]
            if pm.p99 is None:
                continue
            bound = max(LATENCY_FACTOR * pm.p99, pm.p99 + 0.05)
            out.append(Bound(f"probe.{name}.latency.p99.{phase}", {"max": _secs(round(bound, 3))},
                             f"{pm.summary()}; bound {LATENCY_FACTOR:g}x (or +50 ms)"))
        return out

    def ttr(self, s: Service) -> Bound:
        why = {"always": "restart: always", "on-failure": "restart: on-failure", "unless-stopped": "restart: unless-stopped",
               "controller": "its controller replaces the pod"}.get(s.restart, "no restart policy: a finding is expected")
        return Bound("time_to_recovery", {"max": _secs(TTR)}, f"default bound; {why}")

    def service(self, s: Service) -> None:
        platform = self.system.platform
        probes = probes_for(self.system, s)
        targets = {s.name: s.target}
        finding = []
        if s.restart == "no":
            finding = [f"FINDING expected: {s.name} has no restart policy, so nothing brings it back after the kill;",
                       "this experiment is meant to fail until it has one (restart: always / on-failure)."]
        kill = {"compose": "container.kill", "stack": "process.kill", "kubernetes": "pod.kill"}[platform]
        if kill in s.faults:
            self.experiment(f"{s.name} kill", f"{s.name}: killed, back by itself",
                            f"SIGKILL {s.name}'s main process; {s.restart} brings it back and its probes pass again.",
                            targets, probes, [{"fault": kill, "target": s.name, "at": AT}],
                            [self.ttr(s), *self.probe_bounds(probes, "baseline")], finding)
        pause = {"compose": "container.pause", "stack": "process.pause", "kubernetes": "container.pause"}[platform]
        if pause in s.faults and platform != "kubernetes":
            detect = 5.0
            why = "default: no health check to derive it from"
            if s.health and s.health.interval:
                detect = s.health.interval * (s.health.retries or 3) + (s.health.timeout or 1)
                why = (f"its health check: every {s.health.interval:g}s x {s.health.retries or 3} retries "
                       f"+ {s.health.timeout or 1:g}s timeout")
            self.experiment(f"{s.name} pause", f"{s.name}: frozen for {PAUSE:g}s, noticed",
                            f"Freeze {s.name} for {PAUSE:g}s; something notices within the bound, it resumes.",
                            targets, probes,
                            [{"fault": pause, "target": s.name, "at": AT, "duration": _secs(PAUSE)}],
                            [Bound("detection_time", {"max": _secs(round(detect, 1))}, why), self.ttr(s)])
        if "cpu.throttle" in s.faults:
            self.experiment(f"{s.name} cpu throttle", f"{s.name}: 0.1 cores for {PAUSE * 2:g}s",
                            f"Throttle {s.name} to a tenth of a core; it keeps answering, slower.",
                            targets, probes,
                            [{"fault": "cpu.throttle", "target": s.name, "at": AT, "duration": _secs(PAUSE * 2),
                              "cores": 0.1}],
                            [self.ttr(s), *self.probe_bounds(probes, "fault")])
        if "memory.limit" in s.faults:
            limit = "64MB"
            why = "default limit: no usage measured"
            if self.m is not None and s.name in self.m.memory:
                used = self.m.memory[s.name]
                limit = f"{max(8, int(used * 1.1 / 1e6) + 1)}MB"
                why = f"measured {used / 1e6:.1f} MB in use; the limit is 110% of it"
            self.experiment(f"{s.name} memory limit", f"{s.name}: memory capped at {limit}",
                            f"Cap {s.name}'s memory ({why}); an OOM kill is restarted by its policy.",
                            targets, probes,
                            [{"fault": "memory.limit", "target": s.name, "at": AT, "duration": _secs(PAUSE * 2),
                              "limit": limit}],
                            [self.ttr(s)])
        if s.stateful:
            self.data_check(s, targets, probes, kill)

    def data_check(self, s: Service, targets: dict[str, Any], probes: dict[str, Any], kill: str) -> None:
        self.experiment(
            f"{s.name} kill data", f"{s.name}: killed under writes, nothing acknowledged is lost",
            f"{s.name} holds state ({'; '.join(s.state)}): kill it while the load writes, then read back.",
            targets, probes, [{"fault": kill, "target": s.name, "at": AT}],
            [self.ttr(s), Bound("lost_writes", {"max": 0}, "an acknowledged write must survive")],
            ["TODO: say how writes are made and read back, then move this file next to the others:",
             "  - load.http: a request that writes (POST ...) with ack: {status: [...], id: $.id}",
             "  - verify.acknowledged_writes.sql: the DSN and a query returning the ids written",
             "`chaoslab validate` names the variables still missing: WRITE_URL, VERIFY_DSN, VERIFY_QUERY."],
            todo=True,
            extra={"load": {"http": {"url": "${WRITE_URL}", "method": "POST", "rate": "20/s", "timeout": "2s",
                                     "body": {"key": "{{key}}"}, "ack": {"status": [200, 201]}}},
                   "verify": {"acknowledged_writes": {"sql": {"dsn": "${VERIFY_DSN}", "query": "${VERIFY_QUERY}"}}}},
        )

    def edge(self, d: Dependency) -> None:
        sys_ = self.system
        a, b = sys_.services[d.source], sys_.services[d.target]
        probes = probes_for(sys_, a)
        if d.proxy is not None:
            link = f"{d.proxy['proxy']}-link"
            targets = {a.name: a.target, link: dict(d.proxy)}
            self.experiment(f"{a.name} to {b.name} latency", f"{a.name} -> {b.name}: 500 ms more latency",
                            f"Delay the proxied link {d.proxy['proxy']} ({a.name} -> {b.name}) by 500 ms.",
                            targets, probes,
                            [{"fault": "network.latency", "target": link, "at": AT, "duration": _secs(PAUSE * 2),
                              "latency": "500ms"}],
                            [self.ttr(a), *self.probe_bounds(probes, "recovery")])
            self.experiment(f"{a.name} to {b.name} down", f"{a.name} -> {b.name}: link down",
                            f"Take the proxied link {d.proxy['proxy']} ({a.name} -> {b.name}) down: a partition "
                            "of exactly this edge.",
                            targets, probes,
                            [{"fault": "network.down", "target": link, "at": AT, "duration": _secs(PAUSE * 2)}],
                            [self.ttr(a)])
            return
        if sys_.platform == "compose" and "network.partition" in a.faults:
            # a fixed address, else a container's name (Docker resolves it at injection time)
            peer = b.address or (b.containers[0] if b.containers else f"{sys_.name}_{b.name}_1")
            # in the dependent's namespace, scoped to the dependency and the ports this edge uses:
            # the dependency's other clients, and the dependent's other dependencies, keep talking
            ports = [d.port] if d.port else sorted({p.port for p in b.ports})
            params: dict[str, Any] = {"peers": [peer]}
            if ports:
                params["peer_ports"] = ports
            self.experiment(f"{a.name} to {b.name} partition", f"{a.name} -> {b.name}: partitioned",
                            f"Drop traffic between {a.name} and {b.name} ({d.via}) for {PAUSE * 2:g}s, in "
                            f"{a.name}'s network namespace; {a.name} recovers once the network heals.",
                            {a.name: a.target}, probes,
                            [{"fault": "network.partition", "target": a.name, "at": AT,
                              "duration": _secs(PAUSE * 2), **params}],
                            [self.ttr(a)],
                            [] if b.address or b.containers else
                            [f"peer {peer}: the container name Compose v1 gives; with Compose v2 it is "
                             f"{sys_.name}-{b.name}-1"])
        elif (sys_.platform == "kubernetes" and "network.policy_partition" in a.faults
              and not (a.host_network or b.host_network)):  # advice() says why not
            self.experiment(f"{a.name} to {b.name} partition", f"{a.name} -> {b.name}: partitioned",
                            f"NetworkPolicies deny traffic between {a.name} and {b.name} for {PAUSE * 2:g}s.",
                            {a.name: a.target}, probes,
                            [{"fault": "network.policy_partition", "target": a.name, "at": AT,
                              "duration": _secs(PAUSE * 2), "peer": b.target["pod"]["selector"]}],
                            [self.ttr(a)])


def propose(system: System, *, load_url: str | None = None, measurement: Measurement | None = None,
            stack_ref: str | None = None) -> list[Proposal]:
    b = _Builder(system, load_url, measurement, stack_ref)
    for s in system.services.values():
        b.service(s)
    seen = set()
    for d in system.dependencies:
        # an edge through the proxy is also an edge to the proxy: propose the one to the real service
        key = (d.source, d.target)
        if key not in seen:
            seen.add(key)
            b.edge(d)
    return b.out


def advice(system: System) -> list[str]:
    out = system.advice()
    if system.platform == "stack":
        for d in system.dependencies:
            if d.proxy is None:
                out.append(f"{d.source} -> {d.target}: both on one loopback, so no partition or latency can "
                           "single this edge out; route it through a chaoslab-proxy link")
    if system.platform == "kubernetes":
        for d in system.dependencies:
            on_host = [n for n in (d.source, d.target) if system.services[n].host_network]
            if on_host:
                out.append(f"{d.source} -> {d.target}: {' and '.join(on_host)} on the host network, where no "
                           "NetworkPolicy applies, so no partition is proposed; run its pods in their own "
                           "network (a network plugin)")
    return out
