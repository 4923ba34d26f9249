"""The console's guard against a real ``chaoslab serve`` (httpx, no browser): the token off
loopback, cross-site and CSRF-less POSTs, paths outside the runs and experiments directories,
--read-only, the Host header, and errors that never show a traceback."""

from __future__ import annotations

import json
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ROOT
from tests.serve.plant import plant_run

RUN = "20261201-120000-planted-0001"


def csrf_of(page: str) -> str:
    m = re.search(r"name=csrf content='([0-9a-f]+)'", page)
    assert m, page[:300]
    return m.group(1)


def no_traceback(r: httpx.Response) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    plant_run(runs, RUN, outcome=None)  # "running": the Halt button is shown
    return runs


@pytest.fixture
def experiments(tmp_path: Path) -> Path:
    d = tmp_path / "experiments"
    d.mkdir()
    shutil.copy(ROOT / "examples" / "basic" / "pause-under-load.yaml", d / "pause.yaml")
    return d


def test_cross_site_and_csrf_less_posts_are_refused(serve: Any, runs: Path, experiments: Path,
                                                     tmp_path: Path) -> None:
    server = serve("--runs-dir", str(runs), "--experiments", str(experiments))
    with httpx.Client(base_url=server.url, timeout=60) as c:
        page = c.get("/machine")
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # no other site may frame the console (a Halt button under a decoy)
        assert page.headers["x-frame-options"] == "SAMEORIGIN"
        assert page.headers["referrer-policy"] == "same-origin"
        token = csrf_of(page.text)
        own = {"origin": server.url}
        # another site's page posting with the user's cookie (as if SameSite were ignored)
        r = c.post("/machine/halt", data={"csrf": token, "reason": "x"}, headers={"origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-site" in r.text
        # the right origin but no CSRF token, or a wrong one
        assert c.post("/machine/halt", data={"reason": "x"}, headers=own).status_code == 403
        assert c.post("/machine/halt", data={"csrf": "0" * 32}, headers=own).status_code == 403
        # another site's form cannot send the cookie (SameSite=Strict): no session at all
        bare = httpx.post(server.url + "/catalog/pause.yaml/run", data={"csrf": token}, timeout=60)
        assert bare.status_code == 403
        assert not (tmp_path / "state" / "HALT").exists()
        assert not list(runs.glob("2*-pause-*"))  # nothing was started
        # the live stream is for this console's pages only
        assert c.get(f"/runs/{RUN}/stream", headers={"origin": "http://evil.example"}).status_code == 403
        # with the token, the same request goes through: the refusals above were the guard's
        r = c.post("/machine/halt", data={"csrf": token, "reason": "test"}, headers=own)
        assert r.status_code == 303
        assert json.loads((tmp_path / "state" / "HALT").read_text())["reason"] == "test"
        assert c.post("/machine/clear", data={"csrf": token}, headers=own).status_code == 303
        assert not (tmp_path / "state" / "HALT").exists()


def test_paths_outside_the_runs_and_experiments_dirs_are_refused(serve: Any, runs: Path, experiments: Path,
                                                                 tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    (runs / RUN / "escape.txt").symlink_to(secret)  # a symlink out of the run directory
    server = serve("--runs-dir", str(runs), "--experiments", str(experiments))
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for path in (
            "/runs/..%2Fsecret.txt", "/runs/%2e%2e", "/runs/..%2F..%2Fetc%2Fpasswd/files/x",
            f"/runs/{RUN}/files/..%2F..%2Fsecret.txt", f"/runs/{RUN}/files/%2e%2e%2fjournal.jsonl",
            f"/runs/{RUN}/files/escape.txt", "/runs/..%2Fsecret.txt/stream",
            "/catalog/..%2F..%2Fsecret.txt", "/catalog/%2Fetc%2Fpasswd", "/catalog/../secret.txt",
        ):
            r = c.get(path)
            assert r.status_code in (400, 404), (path, r.status_code)
            assert "SECRET" not in r.text and "root:" not in r.text, path
            no_traceback(r)
        # what may be read is read, a suite's run (one level down) too
        assert c.get(f"/runs/{RUN}/files/journal.jsonl").status_code == 200
        nested = "20261201-120500-nested-0003"
        plant_run(runs / "suite-20261201-120400-nightly-0002", nested)
        assert c.get(f"/runs/{nested}").status_code == 200
        assert c.get(f"/runs/{nested}/files/summary.json").json()["run_id"] == nested
        assert c.get("/runs/suite-20261201-120400-nightly-0002").status_code == 404  # a suite is not a run
        assert c.get("/catalog/pause.yaml").status_code == 200


def test_read_only_hides_and_refuses_every_action(serve: Any, runs: Path, experiments: Path, tmp_path: Path) -> None:
    server = serve("--runs-dir", str(runs), "--experiments", str(experiments), "--read-only")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        pages = [c.get(p).text for p in ("/machine", f"/runs/{RUN}", "/catalog/pause.yaml")]
        for page in pages:
            assert "<form method=post" not in page and "read-only" in page
        token, own = csrf_of(pages[0]), {"origin": server.url}
        for path in ("/machine/halt", "/machine/clear", f"/runs/{RUN}/halt", "/catalog/pause.yaml/run"):
            r = c.post(path, data={"csrf": token}, headers=own)
            assert r.status_code == 403 and "read-only" in r.text, path
    assert not (tmp_path / "state" / "HALT").exists()
    assert not list(runs.glob("2*-pause-*"))


def test_token_session_host_and_errors_on_loopback(serve: Any, runs: Path) -> None:
    token = "t" * 24
    server = serve("--runs-dir", str(runs), "--token", token)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.get("/runs", headers={"accept": "text/html"})
        assert r.status_code == 401 and "token" in r.text
        assert r.headers["referrer-policy"] == "same-origin" and r.headers["x-frame-options"] == "SAMEORIGIN"
        assert c.get("/api/runs").status_code == 401
        assert c.get("/login", params={"token": "wrong" * 5}).status_code == 401
        r = c.get("/login", params={"token": token})
        assert r.status_code == 303 and r.headers["location"] == "/runs"
        assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
        assert c.get("/api/runs").json()["runs"][0]["run_id"] == RUN
    # a script may send the token as a bearer instead of signing in
    assert httpx.get(server.url + "/api/runs", headers={"authorization": f"Bearer {token}"}, timeout=60).status_code == 200
    # a forged session cookie is not a session
    forged = httpx.get(server.url + "/api/runs", cookies={"chaoslab_session": "abc.def"}, timeout=60)
    assert forged.status_code == 401


def test_dns_rebinding_and_bad_requests_get_one_clear_line(serve: Any, runs: Path) -> None:
    server = serve("--runs-dir", str(runs))
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.get("/runs", headers={"host": "evil.example"})
        assert r.status_code == 421 and "evil.example" in r.text
        for path, status in (("/runs/20990101-000000-nope-0000", 404), ("/launches/123", 404),
                             ("/experiment?title=nothing", 404), ("/catalog/x.yaml", 404), ("/nope", 404)):
            r = c.get(path, headers={"accept": "text/html"})
            assert r.status_code == status, path
            no_traceback(r)
        r = c.get("/runs/20990101-000000-nope-0000", headers={"accept": "text/html"})
        assert "no such run" in r.text


@pytest.mark.root
def test_off_loopback_needs_the_token(serve: Any, runs: Path) -> None:
    """Bound to a non-loopback address (a test host's, in its own network namespace): every
    request without the token is refused; the token printed at start signs in."""
    from chaoslab.system import hosts

    name = "srv" + uuid.uuid4().hex[:6]
    net = hosts.create(name, ["h"], subnet="10.231.27.0/24")
    try:
        host = net.host("h")
        server = serve("--runs-dir", str(runs), host=host.address, netns=hosts.command(host, []))
        out_line = server.read_line("sign in with the token")
        token = out_line.rsplit("token=", 1)[1].strip()
        script = (
            "import httpx, json, sys, time\n"
            f"u = 'http://{host.address}:{server.port}'\n"
            "for _ in range(300):\n"
            "    try:\n"
            "        httpx.get(u + '/static/console.css'); break\n"
            "    except httpx.TransportError:\n"
            "        time.sleep(0.1)\n"
            "r1 = httpx.get(u + '/api/runs', timeout=60)\n"
            "r2 = httpx.get(u + '/runs', headers={'accept': 'text/html'}, timeout=60)\n"
            "r3 = httpx.get(u + '/api/runs', headers={'authorization': 'Bearer wrong-token-wrong-token'}, timeout=60)\n"
            "c = httpx.Client(base_url=u, timeout=60)\n"
            "r4 = c.get('/login', params={'token': sys.argv[1]})\n"
            "r5 = c.get('/api/runs')\n"
            "print(json.dumps([r1.status_code, r2.status_code, r3.status_code, r4.status_code, r5.status_code,"
            " 'token' in r2.text]))\n"
        )
        res = hosts.run(host, [sys.executable, "-c", script, token], timeout=60, check=True)
        assert json.loads(res.stdout.strip().splitlines()[-1]) == [401, 401, 401, 303, 200, True]
    finally:
        hosts.destroy(name)
