"""How a Kubernetes Event becomes a journal record (platforms/kubeevents.py), without a cluster;
the cluster's own account is tests/platforms/kubernetes/test_kubernetes_events.py."""

from __future__ import annotations

import pytest


def test_record_times_are_on_the_run_clock_and_kept_inside_the_events_second() -> None:
    """No cluster: an Event of whole seconds seen by the watch is placed when it was seen, kept
    inside its second; one with microseconds where it says; API times become ``*_t``."""
    from chaoslab.platforms.kubeevents import as_event, placed
    from chaoslab.runner.platform_events import as_records

    whole = {"metadata": {"uid": "u1", "namespace": "ns"}, "reason": "Killing", "count": 3,
             "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "ns", "fieldPath": "spec.containers{main}"},
             "firstTimestamp": "2026-12-07T20:29:17Z", "lastTimestamp": "2026-12-07T20:29:19Z"}
    t19 = 1796675359.0  # 2026-12-07T20:29:19Z
    assert placed(whole, t19 + 0.25) == t19 + 0.25
    assert placed(whole, t19 + 4.0) == t19 + 1.0  # a late watch: still inside its second
    assert placed(whole, None) == t19
    micro = {**whole, "lastTimestamp": None, "firstTimestamp": None, "count": None,
             "eventTime": "2026-12-07T20:29:19.360400Z"}
    assert placed(micro, t19 + 0.9) == pytest.approx(t19 + 0.3604)
    (rec,) = as_records([as_event(whole, t19 + 0.25, 2)], t19 - 10.0, "kubernetes")
    assert rec["t"] == pytest.approx(10.25) and rec["kind"] == "Killing" and rec["source"] == "kubernetes"
    assert rec["first_t"] == pytest.approx(8.0) and rec["last_t"] == pytest.approx(10.0)
    assert rec["pod"] == "web-1" and rec["object"] == "pod/web-1" and rec["count"] == 2
    assert "first_wall" not in rec and "time" not in rec
