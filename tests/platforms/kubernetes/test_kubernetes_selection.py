"""Pure parts of the Kubernetes platform: the seeded blast radius and label parsing (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaoslab import faults
from chaoslab.errors import FaultError
from chaoslab.faults.kubernetes import parse_labels
from chaoslab.platforms.kubernetes import choose
from chaoslab.targets import ResolvedTarget

PODS = [f"web-{i}" for i in range(10)]


def test_same_seed_same_pods_other_seed_other_pods() -> None:
    picks = {tuple(choose(PODS, "count:3", seed)) for seed in range(20)}
    assert len(picks) > 1, "the choice depends on the seed"
    assert all(
        choose(PODS, "count:3", s) == choose(list(reversed(PODS)), "count:3", s) for s in range(20)
    )


@pytest.mark.parametrize(
    ("mode", "n"),
    [
        ("one", 1),
        ("all", 10),
        ("count:4", 4),
        ("percent:25", 3),
        ("percent:100", 10),
        ("percent:1", 1),
    ],
)
def test_mode_sizes(mode: str, n: int) -> None:
    got = choose(PODS, mode, 5)
    assert len(got) == n and len(set(got)) == n and set(got) <= set(PODS)


def test_count_beyond_the_pods_is_an_error() -> None:
    with pytest.raises(ValueError, match="10 pods match, mode asks for 11"):
        choose(PODS, "count:11", 1)


def test_labels() -> None:
    assert parse_labels("app=a, tier=web") == {"app": "a", "tier": "web"}
    for bad in ("app", "app!=a", "app==a", "=a"):
        with pytest.raises(ValueError):
            parse_labels(bad)


@pytest.mark.parametrize(
    ("fault", "params"), [("container.pause", {}), ("cpu.throttle", {"cores": 0.5})]
)
def test_container_fault_on_a_pod_off_the_node_names_the_reason(
    fault: str, params: dict[str, Any]
) -> None:
    """A pod whose containers are not in the local dockerd (chaoslab off the node): the container
    and cgroup faults refuse it with the reason and the faults that do reach it."""
    pod = {
        "name": "web-0",
        "uid": "0123456789",
        "node": "far",
        "phase": "Running",
        "containers": [{"name": "main", "container_id": "containerd://abc"}],
    }
    tgt = ResolvedTarget(
        name="web",
        kind="pod",
        spec={},
        extra={"namespace": "shop", "seed": 1, "pods": [pod], "containers": []},
    )
    cls = faults.get(fault)
    f = cls(cls.Params.model_validate(params), tgt, run_id="offnode")
    with pytest.raises(FaultError) as err:
        f.inject()
    f.revert()
    msg = str(err.value)
    assert "web: pods in shop [web-0 (uid 01234567)]" in msg, msg
    assert "no container of these pods runs in the local dockerd" in msg and "chaosmesh" in msg, msg


def test_pods_probe_without_an_api_server_fails_its_sample_with_the_reason(tmp_path: Path) -> None:
    """No cluster answers (a closed port): each sample fails at once, naming the connection
    error; the probe never hangs and never raises."""
    import asyncio
    import socket

    from chaoslab import probes
    from chaoslab.experiment.model import ProbeSpec

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    spec = ProbeSpec.model_validate(
        {
            "pods": {"namespace": "shop", "selector": "app=web", "kubeconfig": str(kubeconfig)},
            "timeout": "2s",
        }
    )

    async def one() -> probes.Sample:
        probe = probes.build("ready", spec, probes.ProbeContext({}))
        await probe.start()
        try:
            return await probe.sample()
        finally:
            await probe.close()

    sample = asyncio.run(asyncio.wait_for(one(), 30))
    assert not sample.ok and sample.value is None
    assert "Connection refused" in str(sample.error), sample


def test_pods_probe_spec_refuses_unknown_fields() -> None:
    from pydantic import ValidationError

    from chaoslab.experiment.model import ProbeSpec

    with pytest.raises(ValidationError, match="namespce"):
        ProbeSpec.model_validate({"pods": {"namespce": "shop"}})
