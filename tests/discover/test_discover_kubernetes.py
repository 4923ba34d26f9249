"""The mapping of a namespace's objects to a System, from plain V1 objects of the official client
built here (fast, on every machine); test_discover_cluster.py lists a real namespace."""

from __future__ import annotations

from kubernetes import client as k

from chaoslab.discover import attach_faults
from chaoslab.discover.kubernetes import from_objects
from chaoslab.discover.propose import advice, propose


def deployment(name: str, image: str, port: int, env: dict[str, str], replicas: int = 1,
               probe_path: str | None = None) -> k.V1Deployment:
    probe = k.V1Probe(http_get=k.V1HTTPGetAction(path=probe_path, port=port), period_seconds=2,
                      failure_threshold=3, timeout_seconds=1) if probe_path else None
    container = k.V1Container(name=name, image=image, ports=[k.V1ContainerPort(container_port=port)],
                              env=[k.V1EnvVar(name=a, value=b) for a, b in env.items()], readiness_probe=probe)
    return k.V1Deployment(
        metadata=k.V1ObjectMeta(name=name),
        spec=k.V1DeploymentSpec(
            replicas=replicas, selector=k.V1LabelSelector(match_labels={"app": name}),
            template=k.V1PodTemplateSpec(metadata=k.V1ObjectMeta(labels={"app": name}),
                                         spec=k.V1PodSpec(containers=[container]))))


def service(name: str, app: str, port: int, target: int, port_name: str | None = None) -> k.V1Service:
    return k.V1Service(metadata=k.V1ObjectMeta(name=name), spec=k.V1ServiceSpec(
        selector={"app": app}, cluster_ip="10.96.0.10",
        ports=[k.V1ServicePort(port=port, target_port=target, name=port_name)]))


def test_two_deployments_and_a_service() -> None:
    web = deployment("web", "shop/web:1", 8080, {"DB_URL": "postgresql://db.shop:5432/app"}, replicas=2,
                     probe_path="/health")
    db = deployment("db", "postgres:15", 5432, {})
    system = from_objects("shop", [web, db], [service("db", "db", 5432, 5432),
                                              service("web", "web", 80, 8080, "http")])
    assert set(system.services) == {"web", "db"}
    w, d = system.services["web"], system.services["db"]
    assert w.target == {"pod": {"namespace": "shop", "selector": "app=web"}, "mode": "count:1"}
    assert w.replicas == 2 and w.restart == "controller"
    assert w.health is not None and w.health.kind == "http" and w.health.interval == 2.0
    assert [(p.port, p.http, p.path, p.cluster) for p in w.ports] == [(8080, True, "/health", "10.96.0.10:80")]
    assert d.stateful and "postgres" in d.state[0]
    assert [(x.source, x.target, x.via, x.port) for x in system.dependencies] == [("web", "db", "env DB_URL", 5432)]
    # the experiments act on pods, with the kubelet's own view as a probe
    attach_faults(system)
    assert "pod.kill" in w.faults
    files = {p.file for p in propose(system)}
    assert any(f.endswith("web-kill.yaml") for f in files)


def test_service_host_variables_are_edges() -> None:
    api = deployment("api", "shop/api:1", 8080, {"CACHE_SERVICE_HOST": "", "X": "y"})
    cache = deployment("cache", "redis:7", 6379, {})
    system = from_objects("shop", [api, cache], [service("cache", "cache", 6379, 6379)])
    assert [(x.source, x.target) for x in system.dependencies] == [("api", "cache")]


def test_a_cluster_ip_is_recorded_but_not_probed_from_outside() -> None:
    """A ClusterIP is routed by kube-proxy inside the cluster only (scripts/k8s.sh's cluster runs
    none). On the real cluster init probed http://CLUSTER_IP:80/ from this machine anyway, where
    the packet left by the default route and a stranger's HTTP server answered 404, which the
    probe's "anything but a 5xx" counts as up: web's kill held with a probe that watched nothing.
    The Service address is kept as `cluster`; the pods probe is the signal."""
    web = deployment("web", "shop/web:1", 8080, {}, replicas=2, probe_path="/health")
    system = from_objects("shop", [web], [service("web", "web", 80, 8080, "http")])
    (p,) = system.services["web"].ports
    assert (p.port, p.host, p.published, p.cluster) == (8080, None, None, "10.96.0.10:80")
    attach_faults(system)
    kill = next(x for x in propose(system) if x.file.endswith("web-kill.yaml"))
    assert list(kill.data["probes"]) == ["web-pods"] and kill.data["probes"]["web-pods"]["signal"] is True


def test_ready_replicas_are_what_runs_now() -> None:
    """The API is a live source: each workload's ready replicas are shown as running now."""
    web = deployment("web", "shop/web:1", 8080, {}, replicas=2)
    web.status = k.V1DeploymentStatus(ready_replicas=1)
    idle = deployment("idle", "shop/idle:1", 9090, {}, replicas=0)
    idle.status = k.V1DeploymentStatus()
    system = from_objects("shop", [web, idle], [])
    assert system.live
    assert (system.services["web"].running, system.services["idle"].running) == (1, 0)


def test_a_named_target_port_is_the_container_port_of_that_name() -> None:
    web = deployment("web", "shop/web:1", 8080, {})
    web.spec.template.spec.containers[0].ports[0].name = "web-http"
    svc = service("web", "web", 80, 8080)
    svc.spec.ports[0].target_port = "web-http"
    system = from_objects("shop", [web], [svc])
    assert [(p.port, p.name, p.cluster) for p in system.services["web"].ports] == [(8080, "web-http", "10.96.0.10:80")]


def test_no_policy_partition_for_host_network_pods() -> None:
    """NetworkPolicies select pods by their own network namespace; a hostNetwork pod has none
    (the single-node cluster runs every pod so), so a policy partition of its edge would hold
    while cutting nothing. The edge is advice instead of an experiment."""
    worker = deployment("worker", "shop/worker:1", 9000, {"WEB_URL": "http://web:80/"})
    web = deployment("web", "shop/web:1", 8080, {}, replicas=2)
    worker.spec.template.spec.host_network = True
    system = from_objects("shop", [worker, web], [service("web", "web", 80, 8080)])
    assert system.services["worker"].host_network and not system.services["web"].host_network
    attach_faults(system)
    if "network.policy_partition" not in system.services["worker"].faults:
        system.services["worker"].faults.append("network.policy_partition")  # doctor's view aside
    assert not [p for p in propose(system) if "partition" in p.file]
    assert any("worker -> web" in a and "host network" in a for a in advice(system)), advice(system)
