"""What Kubernetes said about a run's targets: its core/v1 Events (Killing, Started, BackOff,
Unhealthy, SuccessfulCreate, ScalingReplicaSet, NodeNotSchedulable...) as platform events.

The objects a run's targets name are, per namespace: the pods of each ``pod`` or ``deployment``
selector (those matching at the start, and every pod that matches during the run: the
replacements a controller makes), the pods' owners (ReplicaSet, StatefulSet...) and the
ReplicaSets' Deployment, a ``deployment`` itself, and a ``node`` (whose events the kubelet and the
node controller write into ``default``).

An Event is one object per (object, reason, message) that the API server aggregates: a second
occurrence raises its ``count`` and moves its ``lastTimestamp``. The recorder lists the events
when the run starts (their counts then are the baseline) and watches from that list's
resourceVersion, so an event belongs to the run when it is new or its count grew; a last list
when it stops catches what the watch had not delivered yet. Each such Event is one record; its
``count`` is the occurrences during the run.

Time: the scheduler's events carry microseconds (``eventTime``), the kubelet's and the
controllers' only whole seconds (``firstTimestamp``/``lastTimestamp``). An event seen by the watch
is placed at the moment the watch delivered it, kept inside the second its own timestamp names:
so it is never placed before it happened (a Killing is never drawn before the delete that caused
it). The API's own times are kept as ``first_t``/``last_t``. Times are the cluster's clock: on
another machine than chaoslab's, its skew moves them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..targets import EventRecorder, ResolvedTarget

NODE_EVENTS_NAMESPACE = "default"
"""Where the kubelet and the node controller record a node's events (a node has no namespace)."""

Connect = Callable[[str, str | None], tuple[Any, Any]]
"""(kubeconfig, context) -> the cluster's CoreV1Api and AppsV1Api (platforms/kubernetes.py's
``apis``: handed in, so this module does not import its platform back)."""

WATCH_SECONDS = 300
"""The server ends a watch after this long; it is opened again from where it stopped."""


@dataclass
class Scope:
    """One namespace of one cluster, and the objects in it whose events a run keeps."""

    kubeconfig: str
    context: str | None
    namespace: str
    selectors: set[str] = field(default_factory=set)
    pods: set[str] = field(default_factory=set)
    owners: set[tuple[str, str]] = field(default_factory=set)
    """(kind, name) of the pods' controllers and of the ReplicaSets' Deployment."""
    nodes: set[str] = field(default_factory=set)

    def keeps(self, obj: dict[str, Any]) -> bool:
        kind, name = obj.get("kind"), obj.get("name")
        if kind == "Pod":
            return name in self.pods
        if kind == "Node":
            return name in self.nodes
        return (str(kind), str(name)) in self.owners


def scopes(targets: Iterable[ResolvedTarget]) -> list[Scope]:
    """The namespaces the Kubernetes targets name, and what is kept in each."""
    out: dict[tuple[str, str | None, str], Scope] = {}

    def scope(ex: dict[str, Any], namespace: str) -> Scope:
        key = (str(ex.get("kubeconfig")), ex.get("context"), namespace)
        if key not in out:
            out[key] = Scope(*key)
        return out[key]

    for t in targets:
        ex = t.extra
        if t.kind not in ("pod", "deployment", "node") or not ex.get("kubeconfig"):
            continue
        if "node" in ex:
            scope(ex, NODE_EVENTS_NAMESPACE).nodes.add(ex["node"]["name"])
            continue
        s = scope(ex, ex["namespace"])
        if ex.get("selector"):
            s.selectors.add(ex["selector"])
        s.pods.update(p["name"] for p in ex.get("pods") or [])
        s.pods.update(ex.get("all_pods") or [])
        if "deployment" in ex:
            s.owners.add(("Deployment", ex["deployment"]["name"]))
    return list(out.values())


# --- an Event as plain data ------------------------------------------------------------------

def _seconds(stamp: str | None) -> float | None:
    return None if not stamp else datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def count_of(ev: dict[str, Any]) -> int:
    """Occurrences so far: ``count`` (core/v1 writers), ``series.count`` (events.k8s.io), else 1."""
    return int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)


def last_time(ev: dict[str, Any]) -> tuple[float, bool]:
    """The wall-clock time of its latest occurrence, and whether it has sub-second precision."""
    series_last = _seconds((ev.get("series") or {}).get("lastObservedTime"))
    if series_last is not None:
        return series_last, True
    last = _seconds(ev.get("lastTimestamp"))
    if last is not None:
        return last, False
    event_time = _seconds(ev.get("eventTime"))
    if event_time is not None:
        return event_time, True
    first = _seconds(ev.get("firstTimestamp"))
    return (first if first is not None else _seconds(ev["metadata"].get("creationTimestamp")) or 0.0), False


def first_time(ev: dict[str, Any]) -> float:
    first = _seconds(ev.get("firstTimestamp")) or _seconds(ev.get("eventTime"))
    return first if first is not None else last_time(ev)[0]


def placed(ev: dict[str, Any], observed: float | None) -> float:
    """When its latest occurrence happened, as closely as known: see the module's docstring."""
    stamp, precise = last_time(ev)
    if precise or observed is None:
        return stamp
    return min(max(observed, stamp), stamp + 1.0)


def as_event(ev: dict[str, Any], t: float, count: int) -> dict[str, Any]:
    """The fields of its journal record (``time`` wall-clock, ``event`` its reason)."""
    obj = ev.get("involvedObject") or {}
    kind, name = str(obj.get("kind") or ""), str(obj.get("name") or "")
    source = ev.get("source") or {}
    item: dict[str, Any] = {
        "time": t, "event": ev.get("reason") or "", "object": f"{kind.lower()}/{name}",
        "namespace": obj.get("namespace") or ev["metadata"].get("namespace"), "uid": obj.get("uid"),
        "message": ev.get("message") or "", "event_type": ev.get("type") or "", "count": count,
        "first_wall": first_time(ev), "last_wall": last_time(ev)[0],
        "component": source.get("component") or ev.get("reportingComponent") or "",
    }
    if kind == "Pod":
        item["pod"] = name
    if obj.get("fieldPath"):
        item["field_path"] = obj["fieldPath"]
    return item


# --- the recorder ----------------------------------------------------------------------------

def _lines(resp: Any) -> Iterator[dict[str, Any]]:
    from kubernetes.watch.watch import iter_resp_lines

    for line in iter_resp_lines(resp):
        if line:
            yield json.loads(line)


class _Watch:
    """One list-then-watch of a collection in a thread of its own, each item handed to
    ``on_item(object, seen_at)``; opened again when the server ends it (``WATCH_SECONDS``)."""

    def __init__(self, list_call: Callable[..., Any], on_item: Callable[[dict[str, Any], float | None], None],
                 name: str) -> None:
        self.list_call, self.on_item, self.name = list_call, on_item, name
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread: threading.Thread | None = None
        self.rv = ""

    def list(self) -> list[dict[str, Any]]:
        resp = self.list_call(_preload_content=False)
        doc = json.loads(resp.data)
        self.rv = str(doc["metadata"].get("resourceVersion") or "")
        return list(doc.get("items") or [])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._resp = self.list_call(watch=True, resource_version=self.rv, allow_watch_bookmarks=True,
                                            timeout_seconds=WATCH_SECONDS, _preload_content=False)
                if self._stop.is_set():
                    return
                for item in _lines(self._resp):
                    obj = item.get("object") or {}
                    if item.get("type") == "ERROR":  # 410 Gone: history compacted; list again
                        for o in self.list():
                            self.on_item(o, None)
                        break
                    self.rv = str((obj.get("metadata") or {}).get("resourceVersion") or self.rv)
                    if item.get("type") in ("ADDED", "MODIFIED"):
                        self.on_item(obj, time.time())
            except Exception:
                if self._stop.wait(0.5):  # closed by stop(), or the server went away: the last list still runs
                    return

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            # shutdown() wakes the thread blocked reading the socket; close() alone would not
            with contextlib.suppress(Exception):
                getattr(resp, "shutdown", resp.close)()
            with contextlib.suppress(Exception):
                resp.close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


@dataclass
class _Seen:
    first: dict[str, Any]
    """The Event as first seen in the run (its latest occurrence then is the run's first)."""
    observed: float | None
    base: int
    last: dict[str, Any]


class ScopeRecorder:
    """One namespace's events about the run's objects, from ``start`` to ``stop``."""

    def __init__(self, scope: Scope, connect: Connect) -> None:
        self.scope = scope
        self._lock = threading.Lock()
        self._base: dict[str, int] = {}
        self._seen: dict[str, _Seen] = {}
        self._watches: list[_Watch] = []
        self._rs_read: set[str] = set()
        self._core, self._apps = connect(scope.kubeconfig, scope.context)

    def start(self) -> ScopeRecorder:
        ns = self.scope.namespace
        events = _Watch(lambda **kw: self._core.list_namespaced_event(ns, **kw), self._on_event, f"k8s-events-{ns}")
        for ev in events.list():
            self._base[ev["metadata"]["uid"]] = count_of(ev)
        watches = [events]
        for sel in sorted(self.scope.selectors):
            pods = _Watch(lambda s=sel, **kw: self._core.list_namespaced_pod(ns, label_selector=s, **kw),
                          lambda pod, _seen: self._on_pod(pod), f"k8s-pods-{ns}")
            for pod in pods.list():
                self._on_pod(pod)
            watches.append(pods)
        for w in watches:
            w.start()
        self._watches = watches
        return self

    def _on_pod(self, pod: dict[str, Any]) -> None:
        """A pod matching a selector: its events, its controller's and its ReplicaSet's Deployment's."""
        meta = pod.get("metadata") or {}
        owners = [(o["kind"], o["name"]) for o in meta.get("ownerReferences") or []]
        with self._lock:
            self.scope.pods.add(meta["name"])
            self.scope.owners.update(owners)
        for kind, name in owners:
            if kind == "ReplicaSet" and name not in self._rs_read:
                self._rs_read.add(name)
                with contextlib.suppress(Exception):  # gone already: its pods' events still count
                    rs = self._apps.read_namespaced_replica_set(name, self.scope.namespace)
                    with self._lock:
                        self.scope.owners.update((o.kind, o.name) for o in rs.metadata.owner_references or [])

    def _on_event(self, ev: dict[str, Any], observed: float | None) -> None:
        uid = ev["metadata"]["uid"]
        with self._lock:
            base = self._base.get(uid, 0)
            if count_of(ev) <= base:
                return  # an old event rewritten without a new occurrence
            seen = self._seen.get(uid)
            if seen is None:
                self._seen[uid] = _Seen(ev, observed, base, ev)
            elif count_of(ev) >= count_of(seen.last):
                seen.last = ev

    def between(self, since: float, until: float) -> list[dict[str, Any]]:
        """One look, no recorder: the events now listed whose latest occurrence is in the interval
        (the pods matching the selectors now, beside those resolved, are the run's)."""
        for sel in sorted(self.scope.selectors):
            resp = self._core.list_namespaced_pod(self.scope.namespace, label_selector=sel, _preload_content=False)
            for pod in json.loads(resp.data).get("items") or []:
                self._on_pod(pod)
        out = []
        for ev in self.list_events():
            stamp, precise = last_time(ev)
            if not self.scope.keeps(ev.get("involvedObject") or {}) or stamp > until:
                continue
            if stamp + (0.0 if precise else 1.0) >= since:
                out.append(as_event(ev, max(stamp, since), count_of(ev)))
        return out

    def list_events(self) -> list[dict[str, Any]]:
        resp = self._core.list_namespaced_event(self.scope.namespace, _preload_content=False)
        return list(json.loads(resp.data).get("items") or [])

    def stop(self, until: float) -> list[dict[str, Any]]:
        try:
            for ev in self.list_events():  # what the watch had not delivered yet
                self._on_event(ev, None)
        finally:
            for w in self._watches:
                w.stop()
        return self.collected(until)

    def collected(self, until: float) -> list[dict[str, Any]]:
        out = []
        with self._lock:
            for seen in self._seen.values():
                if not self.scope.keeps(seen.last.get("involvedObject") or {}):
                    continue
                t = placed(seen.first, seen.observed)
                if seen.observed is None and seen.base == 0:
                    t = first_time(seen.first)  # only the last list saw it: its first occurrence
                if t > until:
                    continue
                out.append(as_event(seen.last, t, count_of(seen.last) - seen.base))
        return sorted(out, key=lambda e: (e["time"], e["object"]))


class KubernetesEventRecorder(EventRecorder):
    """The Kubernetes Events about a run's targets, for the length of the run."""

    source = "kubernetes"
    label = "kubernetes events"

    def __init__(self, scopes: list[Scope], connect: Connect) -> None:
        self.scopes, self.connect = scopes, connect
        self._recorders: list[ScopeRecorder] = []

    def start(self) -> KubernetesEventRecorder:
        try:
            for scope in self.scopes:
                self._recorders.append(ScopeRecorder(scope, self.connect).start())
        except Exception:
            for r in self._recorders:
                with contextlib.suppress(Exception):
                    r.stop(time.time())
            raise
        return self

    def stop(self, until: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        errors: list[BaseException] = []
        for r in self._recorders:
            try:
                out += r.stop(until)
            except Exception as exc:  # one cluster gone: the others' events still stand
                errors.append(exc)
        if errors and not out:
            raise errors[0]
        return sorted(out, key=lambda e: float(e["time"]))


def events_between(targets: list[ResolvedTarget], since: float, until: float,
                   connect: Connect) -> list[dict[str, Any]]:
    """The events about ``targets`` whose latest occurrence falls between two wall-clock times,
    in one list per namespace (the programmatic session's way: it has no recorder). Without a
    baseline, an event of whole seconds is kept when its second overlaps the interval."""
    out: list[dict[str, Any]] = []
    for scope in scopes(targets):
        out += ScopeRecorder(scope, connect).between(since, until)
    return sorted(out, key=lambda e: float(e["time"]))
