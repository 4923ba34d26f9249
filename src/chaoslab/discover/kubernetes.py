"""A Kubernetes namespace through the official client: its Deployments and StatefulSets are the
services, a Service in front of a workload gives its ports (and the name other pods reach it by),
and the env and command lines of a workload's pod template that name another workload's Service
(``db``, ``db.shop``, ``db.shop.svc.cluster.local``, or the ``DB_SERVICE_HOST`` variables the
kubelet injects) are its dependencies.

``from_objects`` maps plain V1 objects (the client's own classes); ``load_namespace`` lists them
(tests/discover/test_discover_cluster.py, on the single-node cluster).
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, TargetError
from . import deps
from .model import DATABASES, Health, Port, Service, System


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _probe(probe: Any) -> tuple[Health | None, int | None, str | None]:
    """(health, the port it talks to, its HTTP path)."""
    if probe is None:
        return None, None, None
    every, retries = float(probe.period_seconds or 10), int(probe.failure_threshold or 3)
    timeout = float(probe.timeout_seconds or 1)
    if probe.http_get is not None:
        port = probe.http_get.port
        return (Health("http", f"GET :{port}{probe.http_get.path or '/'}", every, retries, timeout),
                port if isinstance(port, int) else None, probe.http_get.path or "/")
    if probe.tcp_socket is not None:
        port = probe.tcp_socket.port
        return Health("tcp", f":{port}", every, retries, timeout), port if isinstance(port, int) else None, None
    if probe._exec is not None:
        return Health("command", " ".join(probe._exec.command or []), every, retries, timeout), None, None
    return None, None, None


def _target_port(sp: Any, ports: dict[int, Port]) -> int:
    """A Service port's container port: its targetPort, by number or by a container port's name
    (the API gives either); with neither, the Service port itself, as Kubernetes defaults it."""
    t = sp.target_port
    if isinstance(t, int):
        return t
    if isinstance(t, str):
        if t.isdigit():
            return int(t)
        named = next((p.port for p in ports.values() if p.name == t), None)
        if named is not None:
            return named
    return int(sp.port)


def _matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def from_objects(namespace: str, workloads: list[Any], services: list[Any]) -> System:
    """The System of a namespace from its workloads (V1Deployment, V1StatefulSet) and V1Services."""
    system = System("kubernetes", namespace, f"k8s:{namespace}", live=True)  # the API's view is now
    aliases: dict[str, set[str]] = {}
    for w in sorted(workloads, key=lambda w: w.metadata.name):
        name = w.metadata.name
        template = w.spec.template
        labels = dict(template.metadata.labels or {})
        match = dict((w.spec.selector.match_labels if w.spec.selector else None) or labels)
        pod = template.spec
        command: list[str] = []
        env: dict[str, str] = {}
        ports: dict[int, Port] = {}
        health: Health | None = None
        images = []
        for c in pod.containers or []:
            images.append(c.image or "")
            command += [*(c.command or []), *(c.args or [])]
            for e in c.env or []:
                env[e.name] = e.value or ""
            for p in c.ports or []:
                ports[p.container_port] = Port(p.container_port, name=p.name,
                                               http=True if (p.name or "").startswith("http") else None)
            h, hport, path = _probe(c.readiness_probe or c.liveness_probe)
            if h is not None and health is None:
                health = h
                if hport is not None and h.kind == "http":
                    ports.setdefault(hport, Port(hport)).http = True
                    ports[hport].path = path
        state = []
        kind = type(w).__name__
        if kind == "V1StatefulSet":
            state.append("a StatefulSet")
        for v in pod.volumes or []:
            if v.persistent_volume_claim is not None:
                state.append(f"PVC {v.persistent_volume_claim.claim_name}")
        for t in w.spec.volume_claim_templates or [] if hasattr(w.spec, "volume_claim_templates") else []:
            state.append(f"volume claim template {t.metadata.name}")
        words = " ".join(images + command[:2]).lower().replace("/", " ").replace(":", " ").split()
        db = next((d for d in DATABASES if d in words), None)
        if db:
            state.append(f"a {db} (image or command)")
        names = {name}
        for s in services:
            if _matches(s.spec.selector, labels):
                sname = s.metadata.name
                names |= {sname, f"{sname}.{namespace}", f"{sname}.{namespace}.svc",
                          f"{sname}.{namespace}.svc.cluster.local",
                          sname.upper().replace("-", "_") + "_SERVICE_HOST"}
                for sp in s.spec.ports or []:
                    target = _target_port(sp, ports)
                    p = ports.setdefault(target, Port(target))
                    p.name = p.name or sp.name
                    if p.http is None and ((sp.name or "").startswith("http") or sp.app_protocol in ("http", "https")):
                        p.http = True
                    # not p.host: a ClusterIP is routed by kube-proxy inside the cluster, not to
                    # the machine running chaoslab, so a probe on it fails every sample
                    if s.spec.cluster_ip and s.spec.cluster_ip != "None":
                        p.cluster = f"{s.spec.cluster_ip}:{sp.port}"
        replicas = w.spec.replicas if w.spec.replicas is not None else 1
        status = getattr(w, "status", None)
        running = int(status.ready_replicas or 0) if status is not None else None
        system.services[name] = Service(
            running=running, host_network=bool(pod.host_network),
            name=name, image=", ".join(images), command=command, replicas=int(replicas),
            restart="controller", health=health, ports=[ports[k] for k in sorted(ports)], state=state, env=env,
            database=db,
            target={"pod": {"namespace": namespace, "selector": _selector(match)},
                    "mode": "one" if replicas < 2 else "count:1"},
        )
        aliases[name] = names
    deps.by_name(system, aliases)
    # the kubelet's FOO_SERVICE_HOST variables name a Service by the variable's *name*
    for name, svc in system.services.items():
        for key in svc.env:
            for other, names in aliases.items():
                if key in names and other != name:
                    system.depends(name, other, f"env {key}")
    return system


def load_namespace(namespace: str, kubeconfig: str | None = None, context: str | None = None) -> System:
    from ..platforms import kubernetes as k8s

    try:
        client = k8s.api_client(kubeconfig, context)
    except TargetError as exc:
        raise InputError(str(exc), file=f"k8s:{namespace}") from None
    try:
        workloads = [*k8s.apps(client).list_namespaced_deployment(namespace, _request_timeout=10).items,
                     *k8s.apps(client).list_namespaced_stateful_set(namespace, _request_timeout=10).items]
        services = k8s.core(client).list_namespaced_service(namespace, _request_timeout=10).items
    except Exception as exc:  # ApiException, urllib3's connection errors: one line either way
        status = k8s.api_error(exc)
        why = f"HTTP {status}" if status else str(exc).splitlines()[0][:200]
        raise InputError(f"the Kubernetes API server did not answer ({why})", file=f"k8s:{namespace}") from None
    if not workloads:
        try:  # listing an absent namespace answers an empty list, not a 404: ask for it by name
            k8s.core(client).read_namespace(namespace, _request_timeout=10)
        except Exception as exc:
            if k8s.api_error(exc) == 404:
                raise InputError("no such namespace", file=f"k8s:{namespace}") from None
        raise InputError(f"namespace {namespace!r} has no Deployment or StatefulSet", file=f"k8s:{namespace}")
    return from_objects(namespace, workloads, services)
