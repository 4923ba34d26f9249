"""Chaos Toolkit experiments run by chaoslab (issue 17, item 5): the translation, its refusals at
the right line, and real runs against a real service and the real fault proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import Service, free_ports, wait_for_port

from chaoslab.errors import InputError
from chaoslab.experiment.loader import load_experiment

ROOT = Path(__file__).resolve().parents[2]
CTK = ROOT / "examples" / "ctk"
PY = sys.executable


def _write(tmp: Path, data: dict[str, object]) -> Path:
    f = tmp / "ctk.json"
    f.write_text(json.dumps(data, indent=1))
    return f


BASE: dict[str, object] = {
    "title": "t",
    "steady-state-hypothesis": {
        "title": "s",
        "probes": [
            {
                "type": "probe",
                "name": "h",
                "tolerance": 200,
                "provider": {"type": "http", "url": "http://127.0.0.1:9/"},
            }
        ],
    },
    "method": [{"type": "action", "name": "a", "provider": {"type": "process", "path": "true"}}],
}


def test_translation_of_the_toxiproxy_example() -> None:
    exp = load_experiment(CTK / "proxy-latency.json").experiment
    (step,) = exp.method
    assert step.fault == "network.latency"
    assert (step.at, step.duration) == (
        5.0,
        4.0,
    )  # the 4 s pause until delete_toxic in the rollbacks
    assert step.params.model_dump()["latency"] == pytest.approx(0.2)
    assert exp.targets["proxy-service"].proxy == "service"
    assert set(exp.hypothesis) == {
        "probe.health-through-proxy.availability.baseline",
        "probe.health-through-proxy.availability.recovery",
    }
    assert exp.probes["still-answers"].signal is False


@pytest.mark.parametrize(
    ("change", "line_of", "words"),
    [
        (
            lambda d: d["steady-state-hypothesis"]["probes"][0].update(
                tolerance={"type": "regex", "pattern": "x"}
            ),
            '"tolerance"',
            "only a status or exit code",
        ),
        (
            lambda d: d["method"][0]["provider"].update(type="grpc"),
            '"type": "grpc"',
            "grpc actions cannot be mapped",
        ),
        (
            lambda d: d.update(
                configuration={"k": {"type": "env", "key": "CHAOSLAB_CTK_UNSET_VAR"}}
            ),
            '"k"',
            "CHAOSLAB_CTK_UNSET_VAR is not set",
        ),
        (lambda d: d.update(controls=[{"name": "x"}]), '"controls"', "controls cannot be mapped"),
        (lambda d: d["method"].append({"ref": "a"}), '"ref"', "references to other activities"),
    ],
)
def test_what_cannot_be_mapped_is_refused_at_its_line(
    tmp_path: Path, change: object, line_of: str, words: str
) -> None:
    data = json.loads(json.dumps(BASE))
    change(data)  # type: ignore[operator]
    f = _write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_experiment(f)
    line = next(i for i, text in enumerate(f.read_text().splitlines(), 1) if line_of in text)
    assert str(info.value).startswith(f"{f}:{line}:"), str(info.value)
    assert words in str(info.value)


def test_configuration_keys_are_substituted_not_environment_variables(tmp_path: Path) -> None:
    data = json.loads(json.dumps(BASE))
    data["configuration"] = {"where": "http://127.0.0.1:7"}
    data["steady-state-hypothesis"]["probes"][0]["provider"]["url"] = "${where}/health"  # type: ignore[index]
    exp = load_experiment(_write(tmp_path, data)).experiment
    assert (
        exp.probes["h"].http is not None and exp.probes["h"].http.url == "http://127.0.0.1:7/health"
    )


@pytest.fixture
def proxy(service: Service) -> Iterator[tuple[int, int]]:
    """The chaoslab fault proxy (Toxiproxy API) with a link `service` in front of the service."""
    api, listen = free_ports(2)
    proc = subprocess.Popen(
        [PY, "-m", "chaoslab.proxy", "serve", "--port", str(api)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(api)
        httpx.post(
            f"http://127.0.0.1:{api}/proxies",
            json={
                "name": "service",
                "listen": f"127.0.0.1:{listen}",
                "upstream": f"127.0.0.1:{service.port}",
            },
        ).raise_for_status()
        yield api, listen
    finally:
        proc.terminate()
        proc.wait(10)


def _run(tmp: Path, file: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**os.environ, "CHAOSLAB_STATE_DIR": str(tmp / "state"), **env}
    return subprocess.Popen(
        [PY, "-m", "chaoslab", "run", "--runs-dir", str(tmp / "runs"), str(file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
    )


def test_toxiproxy_experiment_runs_on_the_chaoslab_proxy(
    tmp_path: Path, proxy: tuple[int, int]
) -> None:
    api, listen = proxy
    run = _run(
        tmp_path,
        CTK / "proxy-latency.json",
        {"TOXIPROXY_PORT": str(api), "PROXIED_URL": f"http://127.0.0.1:{listen}"},
    )
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        toxics = httpx.get(f"http://127.0.0.1:{api}/proxies/service/toxics").json()
        seen.extend(t["type"] for t in toxics)
        time.sleep(0.2)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert "latency" in seen, "the latency toxic was never on the proxy"
    assert httpx.get(f"http://127.0.0.1:{api}/proxies/service/toxics").json() == [], (
        "the toxic was left behind"
    )
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["outcome"] == "held", summary


def test_http_and_process_actions_run(tmp_path: Path, service: Service) -> None:
    run = _run(
        tmp_path, CTK / "http-action.json", {"SERVICE_URL": f"http://127.0.0.1:{service.port}"}
    )
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert "ctk-1" in httpx.get(f"http://127.0.0.1:{service.port}/items").json()["ids"]
    run = _run(
        tmp_path,
        CTK / "pause-service.json",
        {"SERVICE_URL": f"http://127.0.0.1:{service.port}", "SERVICE_PID": str(service.pid)},
    )
    stopped = False
    while run.poll() is None:
        stopped = stopped or service.status() == "stopped"
        time.sleep(0.1)
    out, err = run.communicate(timeout=120)
    assert stopped, "the process action never paused the service"
    assert service.status() != "stopped"
    assert run.returncode == 0, out + err
