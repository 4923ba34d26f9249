"""What Kubernetes did to the targeted pods during the run, in plain words (from the Events the
runner copied into the journal with ``source: kubernetes``, platforms/kubeevents.py)."""

from __future__ import annotations

from typing import Any

from ..records import Record, events

CREATED = "Created pod: "
"""How the ReplicaSet, Job and DaemonSet controllers word a new pod (SuccessfulCreate)."""


def kubernetes_events(journal: list[Record]) -> list[dict[str, Any]]:
    return [e for e in events(journal, "kubernetes") if e.get("object")]


def _pod_events(evs: list[dict[str, Any]], pod: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in evs if e.get("pod") == pod and e.get("kind") == reason]


def kubernetes_findings(evs: list[dict[str, Any]], t_inject: float | None) -> list[str]:
    """"pod web-1 was stopped by the kubelet at 3.1 s; replicaset/web-7d created web-2 0.1 s
    later, started at 4.2 s": one sentence per pod stopped after the first injection, one per pod
    whose containers started again, and one per kind of warning."""
    after = [e for e in evs if t_inject is None or e["t"] >= t_inject]
    out = []
    created = [e for e in after if e.get("kind") == "SuccessfulCreate" and CREATED in str(e.get("message"))]
    for kill in (e for e in after if e.get("kind") == "Killing" and e.get("pod")):
        text = f"pod {kill['pod']} was stopped by the {kill.get('component') or 'kubelet'} at {kill['t']:.1f} s"
        new = next((c for c in created if c["t"] >= kill["t"] - 1.0), None)  # whole seconds: the same second
        if new is not None:
            created.remove(new)
            name = str(new["message"]).split(CREATED, 1)[1].strip()
            text += f"; {new['object']} created {name} {max(new['t'] - kill['t'], 0.0):.1f} s later"
            started = _pod_events(evs, name, "Started")
            text += f", started at {started[0]['t']:.1f} s" if started else ", not started by the end of the run"
        out.append(text + ".")
    scheduled = {e.get("pod") for e in evs if e.get("kind") == "Scheduled"}
    restarted: dict[str, int] = {}
    for e in after:  # a container started again in a pod that was not new: a restart in place
        if e.get("kind") == "Started" and e.get("pod") and e["pod"] not in scheduled:
            restarted[e["pod"]] = restarted.get(e["pod"], 0) + int(e.get("count") or 1)
    for pod, n in restarted.items():
        back = sum(int(e.get("count") or 1) for e in _pod_events(after, pod, "BackOff"))
        out.append(f"pod {pod}: the kubelet restarted its containers {n} time(s)"
                   + (f", {back} back-off(s) between restarts." if back else "."))
    warnings: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in after:
        if e.get("event_type") == "Warning" and e.get("kind") != "BackOff":
            warnings.setdefault((str(e["kind"]), str(e["object"])), []).append(e)
    for (reason, obj), group in warnings.items():
        n = sum(int(e.get("count") or 1) for e in group)
        out.append(f"Kubernetes warned {reason} on {obj} {n} time(s) from {group[0]['t']:.1f} s: "
                   f"{group[0].get('message')}")
    return out
