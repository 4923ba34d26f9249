"""Kubernetes targets: pods by label selector, a deployment, a node, through the official client.

Everything a fault or ``chaoslab recover`` needs later is kept in the resolved target's ``extra``
as plain data: the kubeconfig file and context it was resolved with, and each object's name *and
uid*. Faults act with a uid precondition, so an object deleted and re-created under the same name
(a StatefulSet pod, a re-applied deployment) is never touched by a fault meant for its
predecessor.

On a single-node cluster whose runtime is the local dockerd (``scripts/k8s.sh``, kind, minikube
with the docker driver), a pod's containers are local Docker containers: their main processes are
put into ``processes`` and the containers into ``extra["containers"]`` as a container target has them,
so process, signal, cgroup and container faults (container.pause, cpu.throttle, ...) apply to pods
without Chaos Mesh.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TargetError
from ..targets import Platform
from ..targets.base import CONTAINERS

if TYPE_CHECKING:
    from ..targets import EventRecorder, ResolvedTarget, TargetSpec
    from .docker import ContainerInfo

DEFAULT_KUBECONFIG = "~/.kube/config"


def kubeconfig_path(given: str | None) -> str:
    """The kubeconfig file the way kubectl finds it: explicit, then $KUBECONFIG, then ~/.kube."""
    raw = given or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or DEFAULT_KUBECONFIG
    return str(Path(raw).expanduser().resolve())


def api_client(kubeconfig: str | None, context: str | None) -> Any:
    """A fresh ``ApiClient`` for this kubeconfig/context (never the client library's global one,
    so two experiments against two clusters cannot mix)."""
    try:
        from kubernetes import config
    except ImportError:
        raise TargetError(
            "Kubernetes targets need the official client: pip install 'chaoslab[kubernetes]'"
        ) from None
    path = kubeconfig_path(kubeconfig)
    if not os.path.exists(path):
        raise TargetError(f"kubeconfig {path} does not exist (set kubeconfig: or $KUBECONFIG)")
    try:
        return config.new_client_from_config(config_file=path, context=context)
    except Exception as exc:  # the loader raises ConfigException and plain errors alike
        raise TargetError(f"kubeconfig {path}: {exc}") from None


def core(client: Any) -> Any:
    from kubernetes import client as k

    return k.CoreV1Api(client)


def apps(client: Any) -> Any:
    from kubernetes import client as k

    return k.AppsV1Api(client)


def apis(kubeconfig: str | None, context: str | None) -> tuple[Any, Any]:
    """The core and apps APIs of one fresh client (the event recorder's, one per namespace)."""
    client = api_client(kubeconfig, context)
    return core(client), apps(client)


def api_error(exc: Exception) -> int | None:
    """The HTTP status of a client ``ApiException`` (None for anything else)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def choose(names: list[str], mode: str, seed: int) -> list[str]:
    """The blast radius over pods, drawn at random with ``seed`` (recorded, so a run repeats)."""
    from ..targets import parse_mode

    kind, n = parse_mode(mode)
    pool = sorted(names)
    rng = random.Random(seed)
    if kind == "all":
        return pool
    if kind == "one":
        return [rng.choice(pool)]
    if kind == "count":
        if len(pool) < n:
            raise ValueError(f"{len(pool)} pods match, mode asks for {int(n)}")
        return sorted(rng.sample(pool, int(n)))
    k = max(1, -(-len(pool) * int(n * 1000) // 100000))
    return sorted(rng.sample(pool, min(k, len(pool))))


def local_container(container_id: str) -> ContainerInfo | None:
    """The container of the local dockerd behind a ``docker://`` container id, if it runs here
    (chaoslab on the node of a single-node cluster whose runtime is this dockerd)."""
    if not container_id.startswith("docker://"):
        return None
    from . import docker

    try:
        found = docker.get(container_id.removeprefix("docker://"))
    except Exception:  # no dockerd here, or it does not answer: the pod runs elsewhere
        return None
    return None if found is None else docker.ContainerInfo.of(found.attrs)


def pod_record(pod: Any, local: list[ContainerInfo] | None = None) -> dict[str, Any]:
    """A pod as plain data; its containers found in the local dockerd are appended to ``local``."""
    containers = []
    for st in pod.status.container_statuses or []:
        entry: dict[str, Any] = {"name": st.name, "container_id": st.container_id or ""}
        info = local_container(st.container_id or "")
        if info is not None:
            entry["docker"] = {"id": info.id, "name": info.name, "pid": info.pid}
            if local is not None:
                local.append(info)
        containers.append(entry)
    return {
        "name": pod.metadata.name,
        "uid": pod.metadata.uid,
        "node": pod.spec.node_name,
        "phase": pod.status.phase,
        "containers": containers,
    }


def is_ready(pod: Any) -> bool:
    """Ready by its own condition, and not terminating."""
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def local_containers_now(target: ResolvedTarget, api: Any) -> list[ContainerInfo]:
    """The local containers the target's chosen pods (the same uids) run now, read through the
    ``core`` API ``api``: after a crash the kubelet starts a new container, with a new id and
    cgroup, in the same pod."""
    ex = target.extra
    out: list[ContainerInfo] = []
    for rec in ex.get("pods") or []:
        try:
            pod = api.read_namespaced_pod(rec["name"], ex["namespace"])
        except Exception as exc:
            if api_error(exc) == 404:
                continue  # deleted: its replacement is another pod, not this target's
            raise
        if pod.metadata.uid == rec["uid"]:
            pod_record(pod, out)
    return out


def list_pods(client: Any, namespace: str, selector: str) -> list[Any]:
    """Pods matching ``selector`` that are not already going away."""
    try:
        pods = core(client).list_namespaced_pod(namespace, label_selector=selector).items
    except Exception as exc:
        raise TargetError(f"listing pods {selector!r} in {namespace!r}: {_reason(exc)}") from None
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", "") or exc).strip().splitlines()[0]


def resolve(base: ResolvedTarget, spec: TargetSpec) -> ResolvedTarget:
    """Fill ``base`` (kind pod, deployment or node) from the cluster."""
    from ..targets import ProcessRef

    kubeconfig = kubeconfig_path(spec.kubeconfig)
    client = api_client(kubeconfig, spec.context)
    extra: dict[str, Any] = {"kubeconfig": kubeconfig, "context": spec.context}
    name = base.name
    if spec.pod is not None:
        sel = spec.pod
        pods = {p.metadata.name: p for p in list_pods(client, sel.namespace, sel.selector)}
        if not pods:
            raise TargetError(f"target {name!r}: no pod matches {sel.selector!r} in namespace {sel.namespace!r}")
        seed = sel.seed if sel.seed is not None else random.SystemRandom().randrange(2**32)
        if spec.mode == "one" and sel.seed is None and len(pods) > 1:
            # Like process targets: `one` over several matches is a choice the user must make.
            raise TargetError(
                f"target {name!r}: {sel.selector!r} matches {len(pods)} pods ({', '.join(sorted(pods)[:8])}) "
                "but mode is 'one'; set mode: all | count:N | percent:P, or a seed to pick one at random"
            )
        try:
            chosen = choose(list(pods), spec.mode, seed)
        except ValueError as exc:
            raise TargetError(f"target {name!r}: {exc}") from None
        local: list[ContainerInfo] = []
        records = [pod_record(pods[n], local) for n in chosen]
        extra.update(namespace=sel.namespace, selector=sel.selector, seed=seed, pods=records,
                     all_pods=sorted(pods))
        # The pods' containers in the local dockerd: container and cgroup faults act on them as
        # on a container target (one container: its cgroups are the target's).
        extra["containers"] = [c.to_dict() for c in local]
        if len(local) == 1:
            base.cgroups = dict(local[0].cgroups)
        for c in local:
            if c.pid:
                try:
                    base.processes.append(ProcessRef.of(c.pid))
                except Exception:  # the container exited between inspect and now
                    continue
    elif spec.deployment is not None:
        d = spec.deployment
        try:
            dep = apps(client).read_namespaced_deployment(d.name, d.namespace)
        except Exception as exc:
            raise TargetError(f"target {name!r}: deployment {d.namespace}/{d.name}: {_reason(exc)}") from None
        labels = ",".join(f"{k}={v}" for k, v in sorted((dep.spec.selector.match_labels or {}).items()))
        extra.update(
            namespace=d.namespace,
            deployment={"name": d.name, "uid": dep.metadata.uid, "replicas": dep.spec.replicas},
            selector=labels,
            pods=[pod_record(p) for p in list_pods(client, d.namespace, labels)] if labels else [],
        )
    elif spec.node is not None:
        try:
            node = core(client).read_node(spec.node)
        except Exception as exc:
            raise TargetError(f"target {name!r}: node {spec.node!r}: {_reason(exc)}") from None
        extra.update(node={"name": spec.node, "uid": node.metadata.uid})
    base.extra = extra
    return base


def describe(target: ResolvedTarget) -> str | None:
    """What ``--dry-run`` prints for a resolved Kubernetes target."""
    ex = target.extra
    if not ex:
        return None
    if "pods" in ex and target.kind == "pod":
        pods = ", ".join(f"{p['name']} (uid {p['uid'][:8]})" for p in ex["pods"])
        return f"{target.name}: pods in {ex['namespace']} [{pods}] (seed {ex['seed']})"
    if "deployment" in ex:
        d = ex["deployment"]
        return f"{target.name}: deployment {ex['namespace']}/{d['name']} (uid {d['uid'][:8]}, {d['replicas']} replicas)"
    if "node" in ex:
        return f"{target.name}: node {ex['node']['name']} (uid {ex['node']['uid'][:8]})"
    return target.name


class KubernetesPlatform(Platform):
    """Pods, deployments and nodes, through the cluster's API. A pod's containers that run in
    the local dockerd are local containers as a Docker target has them (``extra["containers"]``):
    processes, cgroups and Docker's container actions apply to them."""

    name = "kubernetes"
    events_label = "kubernetes events"
    replaces_containers = True  # the kubelet starts a new container (new id, new cgroup) after a crash

    def resolve(self, base: ResolvedTarget, spec: TargetSpec, stack_file: str | None) -> ResolvedTarget:
        return resolve(base, spec)

    def describe(self, target: ResolvedTarget) -> str | None:
        return describe(target)

    def own_cgroup(self, target: ResolvedTarget) -> str | dict[str, str] | None:
        return dict(target.cgroups) or None  # one local container: its own cgroup

    def containers(self, target: ResolvedTarget) -> list[dict[str, Any]] | None:
        return list(target.extra.get("containers") or []) if target.can(CONTAINERS) else None

    def no_container(self, target: ResolvedTarget | None) -> str:
        what = target.describe() if target is not None else "no target"
        return (f"{what}: no container of these pods runs in the local dockerd (chaoslab runs off the "
                "node, or the runtime is not Docker); the pod.* and chaosmesh.* faults act through the cluster")

    def join_cgroups(self, target: ResolvedTarget, controller: str) -> list[str]:
        if not target.can(CONTAINERS):  # a deployment, a node: no container of ours to join
            return super().join_cgroups(target, controller)
        from . import docker

        return docker.join_container(target, self.no_container(target))

    def restart_watch(self, target: ResolvedTarget) -> float | None:
        return 1.0 if target.extra.get("containers") else None

    def containers_now(self, target: ResolvedTarget, cache: dict[str, Any]) -> list[Any]:
        if "api" not in cache:  # one client for the fault's life, not one per tick
            ex = target.extra
            cache["api"] = core(api_client(ex.get("kubeconfig"), ex.get("context")))
        return local_containers_now(target, cache["api"])

    def event_recorder(self, targets: list[ResolvedTarget], since: float) -> EventRecorder | None:
        # The Events of the targets' pods, their controllers and nodes (platforms/kubeevents.py);
        # a pod's Docker containers are Docker's platform's to record.
        from .kubeevents import KubernetesEventRecorder, scopes

        found = scopes(targets)
        return KubernetesEventRecorder(found, apis) if found else None

    def events(self, targets: list[ResolvedTarget], since: float, until: float) -> list[dict[str, Any]]:
        from .kubeevents import events_between

        return events_between(targets, since, until, apis)


PLATFORM = KubernetesPlatform()
