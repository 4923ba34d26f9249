"""Container and Compose targets resolved through the Engine API, the blast radius over
containers, dry-run output, and the guarantee that a recreated container (same name, new id) is
never touched by a stale ledger entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from chaoslab.errors import TargetError
from chaoslab.faults import get
from chaoslab.targets import TargetSpec, resolve

from .conftest import ROOT, Lab, cgroup_file, chaoslab, docker, inspect


def spec(data: dict[str, object]) -> TargetSpec:
    return TargetSpec.model_validate(data)


def test_container_by_name_has_what_faults_need(lab: Lab) -> None:
    name, ip = lab.web("web")
    info = inspect(name)
    t = resolve("web", spec({"container": name}))
    [c] = t.extra["containers"]
    assert c["id"] == info["Id"] and c["name"] == name
    assert c["started_at"] == info["State"]["StartedAt"]
    assert c["pid"] == info["State"]["Pid"] == t.processes[0].pid
    assert t.processes[0].create_time == pytest.approx(
        psutil.Process(c["pid"]).create_time(), abs=0.01
    )
    # the cgroups are the container's own, as the kernel lists them for its main process
    kernel = Path(f"/proc/{c['pid']}/cgroup").read_text()
    assert t.cgroups["memory"].endswith(info["Id"]) and f"memory:/docker/{info['Id']}" in kernel
    assert c["netns"] == f"/proc/{c['pid']}/ns/net"
    assert os.stat(c["netns"]).st_ino != os.stat("/proc/self/ns/net").st_ino
    assert t.address == ip == info["NetworkSettings"]["Networks"][lab.network]["IPAddress"]
    assert (
        t.path == info["GraphDriver"]["Data"]["MergedDir"] and Path(t.path, "www/health").exists()
    )
    # by id prefix too
    assert (
        resolve("web", spec({"container": info["Id"][:12]})).extra["containers"][0]["id"]
        == info["Id"]
    )


def test_label_selector_and_blast_radius(lab: Lab) -> None:
    for i in range(4):
        lab.run(f"w{i}", "sleep", "600", opts=("--label", f"{lab.prefix}.role=worker"))
    lab.run("other", "sleep", "600")
    label = {"label": f"{lab.prefix}.role=worker"}
    with pytest.raises(TargetError, match=r"matches 4 containers .* mode is 'one'"):
        resolve("w", spec({"container": label}))
    every = resolve("w", spec({"container": label, "mode": "all"}))
    assert [c["name"] for c in every.extra["containers"]] == [
        f"{lab.prefix}-w{i}" for i in range(4)
    ]
    assert len(every.processes) == 4
    assert len(resolve("w", spec({"container": label, "mode": "count:2"})).extra["containers"]) == 2
    assert (
        len(resolve("w", spec({"container": label, "mode": "percent:50"})).extra["containers"]) == 2
    )
    assert (
        len(resolve("w", spec({"container": label, "mode": "percent:1"})).extra["containers"]) == 1
    )
    with pytest.raises(TargetError, match="asks for 5"):
        resolve("w", spec({"container": label, "mode": "count:5"}))
    with pytest.raises(TargetError, match="no container named"):
        resolve("x", spec({"container": f"{lab.prefix}-missing"}))
    docker("stop", "-t", "0", f"{lab.prefix}-other")
    with pytest.raises(TargetError, match="is exited, not running"):
        resolve("x", spec({"container": f"{lab.prefix}-other"}))


def test_all_processes_of_a_container(lab: Lab) -> None:
    name, _ = lab.run("multi", "sh", "-c", "sleep 600 & sleep 601 & wait")
    time.sleep(0.5)
    main = resolve("m", spec({"container": name}))
    every = resolve("m", spec({"container": name, "processes": "all"}))
    assert len(main.processes) == 1
    procs = Path(main.cgroups["pids"], "cgroup.procs").read_text().split()
    assert (
        sorted(p.pid for p in every.processes) == sorted(int(p) for p in procs) and len(procs) == 3
    )


def test_dry_run_shows_the_resolved_containers(lab: Lab, tmp_path: Path) -> None:
    name, _ = lab.run("dry", "sleep", "600")
    cid = inspect(name)["Id"]
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"title: dry\ntargets:\n  c: {{container: {name}}}\nmethod:\n"
        "  - {fault: container.pause, target: c, at: 1s, duration: 1s}\n"
    )
    env = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run(
        chaoslab("run", "--dry-run", str(exp)), capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert f"container {name} {cid[:12]} pid {inspect(name)['State']['Pid']}" in out.stdout
    assert inspect(name)["State"]["Paused"] is False


def test_recreated_container_is_never_touched_by_a_stale_entry(lab: Lab) -> None:
    name, _ = lab.run("re", "sleep", "600")
    old = resolve("c", spec({"container": name}))
    pause = get("container.pause")(get("container.pause").Params(), old, run_id=lab.prefix)
    limit_cls = get("memory.limit")
    limit = limit_cls(limit_cls.Params.model_validate({"limit": "32MB"}), old, run_id=lab.prefix)
    limit.state = {
        "existing": {"dirs": dict(old.cgroups), "versions": {k: 1 for k in old.cgroups}},
        "old": None,
    }
    records = [
        pause.to_record()
        | {"state": {"containers": [{"id": old.extra["containers"][0]["id"], "name": name}]}},
        limit.to_record(),
    ]
    # Compose-style recreation: same name, new container, new id.
    docker("rm", "-f", name)
    lab.run("re", "sleep", "600")
    new = inspect(name)
    assert new["Id"] != old.extra["containers"][0]["id"]
    docker(
        "pause", name
    )  # the new container is paused by someone else: a stale revert must not unpause it
    mem_before = cgroup_file(new["Id"], "memory", "memory.limit_in_bytes")
    code = textwrap.dedent("""
        import json, sys
        from chaoslab import faults
        for record in json.loads(sys.stdin.read()):
            fault = faults.get(record["fault"]).from_record(record)
            fault.revert()
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(records),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    assert inspect(name)["State"]["Paused"] is True
    assert cgroup_file(new["Id"], "memory", "memory.limit_in_bytes") == mem_before
    docker("unpause", name)
    # and injecting from the stale resolution acts on nothing: the old id is gone
    from chaoslab.errors import FaultError

    with pytest.raises(FaultError, match="no longer exist"):
        get("container.kill")(get("container.kill").Params(), old, run_id=lab.prefix).inject()
    assert inspect(name)["State"]["Running"] is True
    assert inspect(name)["Id"] == new["Id"]


COMPOSE = """
version: "2.4"
services:
  worker:
    image: chaoslab/busybox:1
    command: ["sleep", "600"]
    network_mode: none
    labels: {chaoslab.test: "%s"}
"""


def test_compose_service_scaled_to_three_mode_all(lab: Lab, tmp_path: Path) -> None:
    project = lab.prefix
    (tmp_path / "docker-compose.yml").write_text(COMPOSE % lab.prefix)
    base = ["docker-compose", "-p", project, "-f", str(tmp_path / "docker-compose.yml")]
    up = subprocess.run(
        [*base, "up", "-d", "--scale", "worker=3"], capture_output=True, text=True, timeout=180
    )
    assert up.returncode == 0, up.stderr
    try:
        t = resolve(
            "w", spec({"compose": {"project": project, "service": "worker"}, "mode": "all"})
        )
        names = [c["name"] for c in t.extra["containers"]]
        assert len(names) == 3 and all(project in n for n in names)
        with pytest.raises(TargetError, match="matches 3 containers"):
            resolve("w", spec({"compose": {"project": project, "service": "worker"}}))
        pause = get("container.pause")(get("container.pause").Params(), t, run_id=lab.prefix)
        pause.inject()
        try:
            assert [inspect(n)["State"]["Paused"] for n in names] == [True] * 3
            # Docker's freezer: every process of each container is frozen, as the kernel says
            for n in names:
                assert (
                    Path(f"/sys/fs/cgroup/freezer/docker/{inspect(n)['Id']}/freezer.state")
                    .read_text()
                    .strip()
                    == "FROZEN"
                )
        finally:
            pause.revert()
        assert [inspect(n)["State"]["Paused"] for n in names] == [False] * 3
        # a cgroup fault over all three: each container's own cgroup, restored from the ledger
        # record by another process (as `chaoslab recover` does)
        ids = [inspect(n)["Id"] for n in names]
        quotas = [cgroup_file(i, "cpu", "cpu.cfs_quota_us") for i in ids]
        throttle = get("cpu.throttle")(
            get("cpu.throttle").Params.model_validate({"cores": 0.1}), t, run_id=lab.prefix
        )
        throttle.inject()
        assert [cgroup_file(i, "cpu", "cpu.cfs_quota_us") for i in ids] == ["10000"] * 3
        code = (
            "import json, sys; from chaoslab import faults; r = json.loads(sys.stdin.read()); "
            "faults.get(r['fault']).from_record(r).revert()"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(throttle.to_record()),
            text=True,
            capture_output=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        assert proc.returncode == 0, proc.stderr
        assert [cgroup_file(i, "cpu", "cpu.cfs_quota_us") for i in ids] == quotas
        # the project's whole service list when no service is named
        assert (
            len(
                resolve("p", spec({"compose": {"project": project}, "mode": "all"})).extra[
                    "containers"
                ]
            )
            == 3
        )
    finally:
        subprocess.run([*base, "down", "-t", "0"], capture_output=True, timeout=180)
