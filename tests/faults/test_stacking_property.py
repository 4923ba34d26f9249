"""Property: whatever faults overlap on the same settings, and however the run ends, every
setting is back to its original value afterwards.

Hypothesis draws schedules of 2-5 steps over one set of settings (a cgroup's CPU quota, pids.max
and memory limit; a process's open-files limit its cpu/pids cgroup membership and whether it is stopped; a proxy
link's toxics and enabled flag; an nft table), each step at a random offset and duration, some
repeated, and an exit path: normal end, SIGINT, SIGTERM, ``chaoslab halt``, SIGKILL +
``chaoslab recover``, or
SIGKILL, a recover SIGKILLed too, then another recover. The runner is the real ``chaoslab run``.
After each schedule the test reads the system (cgroup files, /proc/PID/limits, /proc/PID/cgroup,
the proxy's API, ``nft list tables``, a TCP connect) and compares with what it read before the
first schedule: a leak in one schedule also fails every later one.

``CHAOSLAB_STACK_EXAMPLES`` sets the number of schedules per exit path (default 4 in ``make test``:
24 schedules, about a minute; the long run sets e.g. 30); ``CHAOSLAB_STACK_BUDGET`` the seconds
per exit path after which no new schedule starts (default 20: on a machine loaded by others fewer
schedules run, at least 3 per path).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import PY, Lab, Scratch, chaoslab_argv, child_env, fault_cgroups, nft_tables

EXAMPLES = int(os.environ.get("CHAOSLAB_STACK_EXAMPLES", "4"))
BUDGET = float(os.environ.get("CHAOSLAB_STACK_BUDGET", "20"))

FAULTS = {
    "cg-cpu": ("cpu.throttle", "cg", st.sampled_from(["cores: 0.2", "cores: 0.3", "cores: 0.5"])),
    "cg-pids": ("pids.limit", "cg", st.sampled_from(["max: 50", "max: 60", "max: 70"])),
    "cg-memory": ("memory.limit", "cg", st.sampled_from(["limit: 200MB", "limit: 300MB"])),
    "rlimit": ("process.rlimit", "v", st.sampled_from(["soft: 64", "soft: 128", "soft: 256"])),
    "member-cpu": ("cpu.throttle", "v", st.sampled_from(["cores: 0.3", "cores: 0.6"])),
    "member-pids": ("pids.limit", "v", st.sampled_from(["max: 80", "max: 90"])),
    "toxic": ("network.latency", "link", st.sampled_from(["latency: 10ms", "latency: 30ms"])),
    "down": ("network.down", "link", st.just("")),
    "nft": ("network.partition", "port", st.just("")),
    "pause": ("process.pause", "v", st.just("method: signal")),
}
# Each schedule is about a few settings, so that steps really overlap on the same ones.
GROUPS = [
    ["cg-cpu", "cg-pids", "member-cpu"],
    ["cg-memory", "member-pids", "cg-pids"],
    ["rlimit", "member-cpu", "member-pids", "pause"],
    ["toxic", "down", "nft"],
    list(FAULTS),
]
TENTHS = st.integers(0, 8).map(lambda n: n / 10)


@st.composite
def step(draw: st.DrawFn, kinds: list[str]) -> str:
    kind = draw(st.sampled_from(kinds))
    fault, target, params_st = FAULTS[kind]
    params = draw(params_st)
    at = draw(TENTHS)
    duration = draw(st.integers(2, 12)) / 10
    repeat = draw(st.sampled_from([1, 1, 2]))
    extra = f", repeat: 2, every: {draw(st.integers(2, 6)) / 10}s" if repeat == 2 else ""
    if fault == "process.rlimit":
        params += ", resource: nofile"
    return (
        f"{{fault: {fault}, target: {target}, at: {at}s, duration: {duration}s{extra}"
        + (f", {params}" if params else "")
        + "}"
    )


@st.composite
def schedule(draw: st.DrawFn) -> list[str]:
    kinds = draw(st.sampled_from(GROUPS))
    return draw(st.lists(step(kinds), min_size=2, max_size=5))


EXITS = ["normal", "sigint", "sigterm", "halt", "kill+recover", "kill+kill-recover+recover"]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, httpx.Client]]:
    proc = subprocess.Popen(
        [PY, "-m", "chaoslab.proxy", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(tmp_path / "proxy-state"),
    )
    try:
        assert proc.stdout is not None
        m = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        assert m, "the proxy did not start"
        http = httpx.Client(base_url=m.group(0), timeout=10)
        r = http.post(
            "/proxies", json={"name": "db", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0"}
        )
        assert r.status_code == 201, r.text
        yield m.group(0), http
        http.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture
def server() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            return True
    except OSError:
        return False


def system(scratch: Scratch, http: httpx.Client, port: int) -> dict[str, Any]:
    link = http.get("/proxies/db").json()
    stat = Path(f"/proc/{scratch.victim.pid}/stat").read_text()
    return {
        **scratch.snapshot(),
        "victim_state": stat[stat.rindex(")") + 2],
        "link_enabled": link["enabled"],
        "toxics": sorted(t["name"] for t in link.get("toxics", [])),
        "port_open": connects(port),
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("exit", EXITS)
def test_overlapping_schedules_leave_every_setting_as_it_was(
    exit: str,
    tmp_path: Path,
    scratch: Scratch,
    proxy: tuple[str, httpx.Client],
    server: int,
) -> None:
    api, http = proxy
    head = (
        f"title: stacking\ntargets:\n  cg: {{cgroup: {scratch.rel}}}\n  v: {{pid: {scratch.victim.pid}}}\n"
        f'  link: {{proxy: db, api: "{api}"}}\n  port: {{address: 127.0.0.1, port: {server}}}\n'
        "recovery: 0s\nmax_duration: 10m\nmethod:\n"
    )
    original = system(scratch, http, server)
    assert original["port_open"] and original["link_enabled"] and original["toxics"] == []
    tally: dict[str, int] = {}
    numbers = itertools.count()
    killed_mid_recover = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        steps=schedule(),
        delay=st.integers(0, 15).map(lambda n: n / 10),
        recover_delay=st.integers(3, 30).map(lambda n: n / 10),
    )
    def one(steps: list[str], delay: float, recover_delay: float) -> None:
        nonlocal killed_mid_recover
        if time.monotonic() > stop_at and sum(tally.values()) >= 3:
            return  # out of time: the remaining draws are not run (and not counted)
        lab = Lab(tmp_path / f"ex{next(numbers)}")
        lab.tmp.mkdir()
        try:
            run = lab.start(head + "".join(f"  - {s}\n" for s in steps))
            assert run.read_until(" inject "), run.text()
            if exit == "normal":
                assert run.finish() == 0, run.text()
            elif exit == "halt":
                time.sleep(delay)
                env = child_env(lab.state)
                subprocess.run(
                    chaoslab_argv("halt", "--reason", "test"),
                    env=env,
                    check=True,
                    timeout=60,
                    capture_output=True,
                )
                try:
                    code = run.finish()
                finally:
                    subprocess.run(
                        chaoslab_argv("halt", "--clear"), env=env, timeout=60, capture_output=True
                    )
                assert code in (0, 3), run.text()
            elif exit in ("sigint", "sigterm"):
                time.sleep(delay)
                run.proc.send_signal(signal.SIGINT if exit == "sigint" else signal.SIGTERM)
                code = run.finish()
                # A signal that lands after the run's last line finds no handler any more.
                late = "phase end" in run.text() and code in (-signal.SIGINT, -signal.SIGTERM, 130)
                assert code in (0, 3) or late, run.text()
            else:
                time.sleep(delay)
                run.proc.send_signal(signal.SIGKILL)
                run.proc.wait(timeout=60)
                if exit == "kill+kill-recover+recover":

                    def on_disk() -> tuple[list[Path], list[Path]]:
                        return lab.ledger_entries(), lab.owner_records()

                    before = on_disk()
                    rec = lab.start_recover()
                    # Aimed: as soon as the first entry is reverted (or after a random delay).
                    deadline = time.monotonic() + recover_delay
                    while (
                        time.monotonic() < deadline and rec.poll() is None and on_disk() == before
                    ):
                        time.sleep(0.001)
                    rec.kill()
                    rec.wait(timeout=60)
                    after = on_disk()
                    # Killed halfway: something was reverted, something is left.
                    killed_mid_recover += after != before and bool(after[0] or after[1])
                done = lab.recover()
                assert done.returncode == 0, done.stdout + done.stderr
            now = system(scratch, http, server)
            assert now == original, f"{exit} after {delay}s of\n{''.join(steps)}\n{run.text()}"
            assert fault_cgroups(run.run_id) == []
            table = "chaoslab_" + re.sub(r"[^A-Za-z0-9_]", "_", run.run_id)
            assert table not in nft_tables()
            assert lab.ledger_entries() == [] and lab.owner_records() == []
        finally:
            lab.close()
        tally[exit] = tally.get(exit, 0) + 1

    stop_at = time.monotonic() + BUDGET
    one()
    total = sum(tally.values())
    print(
        f"\nstacking property, {exit}: {total} schedules ran"
        + (
            f"; {killed_mid_recover} recovers were killed halfway (some holders released, some entries left)"
            if exit == EXITS[-1]
            else ""
        )
    )
    assert total >= min(EXAMPLES, 3)
