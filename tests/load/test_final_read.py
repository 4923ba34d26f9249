"""The final read (verify:) against real endpoints; a read that never succeeds is UNKNOWN."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

from loadtruth_harness import control, truth_service

from chaoslab.analysis import analyze
from chaoslab.experiment.workload import VerifySpec
from chaoslab.runner.finalread import final_read


def _history(run_dir: Path, keys: list[str], acked: set[str]) -> None:
    lines: list[dict[str, Any]] = [{"type": "load", "run": "r"}]
    for i, key in enumerate(keys):
        lines.append(
            {
                "id": i,
                "key": key,
                "t_scheduled": i * 0.1,
                "t_sent": i * 0.1,
                "t_done": i * 0.1 + 0.01,
                "outcome": "ok" if key in acked else "timeout",
                "status": 201 if key in acked else None,
                "latency": 0.01,
                "ack": key in acked,
            }
        )
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run_dir / "journal.jsonl").write_text(
        json.dumps({"type": "phase", "t": 0, "name": "baseline"}) + "\n"
    )
    (run_dir / "experiment.json").write_text(
        json.dumps(
            {
                "experiment": {
                    "title": "v",
                    "verify": {"python": "m:f"},
                    "hypothesis": {"lost_writes": {"max": 0}},
                }
            }
        )
    )


async def _post(base: str, seq: int, key: str) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{base}/orders", json={"seq": seq, "key": key}) as r,
    ):
        assert r.status == 201


def test_http_list_and_per_id_reads(tmp_path: Path) -> None:
    keys = ["r-0", "r-1", "r-2", "r-3"]
    with truth_service() as base:

        async def prepare() -> None:
            await control(base, drop=[1])
            for i, k in enumerate(keys[:3]):  # r-3 timed out and never arrived
                await _post(base, i, k)

        asyncio.run(prepare())
        for name, spec in {
            "list": {"http": {"url": f"{base}/orders", "ids": "$.orders[*].id"}},
            "each": {"http": {"url": f"{base}/orders/{{{{id}}}}"}},
        }.items():
            run = tmp_path / name
            run.mkdir()
            _history(run, keys, acked={"r-0", "r-1", "r-2"})
            asyncio.run(final_read(VerifySpec.model_validate(spec), run))
            verify = json.loads((run / "verify.json").read_text())
            assert verify["ok"] and sorted(verify["ids"]) == ["r-0", "r-2"]
            loss = analyze(run)["data_loss"]
            assert loss["status"] == "checked" and loss["lost"] == ["r-1"]


def test_a_read_that_never_succeeds_is_unknown(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _history(tmp_path, ["r-0"], acked={"r-0"})
    t = time.monotonic()
    spec = VerifySpec.model_validate(
        {"http": {"url": f"http://127.0.0.1:{port}/orders"}, "deadline": "2500ms"}
    )
    asyncio.run(final_read(spec, tmp_path))
    took = time.monotonic() - t
    verify = json.loads((tmp_path / "verify.json").read_text())
    assert verify["ok"] is False and verify["attempts"] >= 2 and "Connect" in verify["error"]
    assert 1.5 <= took <= 6
    a = analyze(tmp_path)
    assert a["data_loss"]["status"] == "unknown" and a["metrics"]["lost_writes"] is None
    assert a["hypothesis"][0]["passed"] is False and "UNKNOWN" in a["hypothesis"][0]["note"]
    assert any("Data loss is UNKNOWN" in f for f in a["findings"])


def test_missing_final_read_is_unknown_and_python_reads(tmp_path: Path) -> None:
    _history(tmp_path, ["r-0"], acked={"r-0"})
    assert (
        analyze(tmp_path)["data_loss"]["status"] == "unknown"
    )  # verify wanted, verify.json absent

    import loadtruth_workload

    loadtruth_workload.STORE[:] = ["r-0", "r-0"]
    asyncio.run(final_read(VerifySpec(python="loadtruth_workload:read_back"), tmp_path))
    loss = analyze(tmp_path)["data_loss"]
    assert loss["status"] == "checked" and loss["lost"] == [] and loss["duplicates"] == ["r-0"]

    asyncio.run(
        final_read(VerifySpec(python="loadtruth_workload:broken_read", deadline=0.5), tmp_path)
    )
    verify = json.loads((tmp_path / "verify.json").read_text())
    assert verify == {
        **verify,
        "ok": False,
        "ids": None,
        "error": "ConnectionError: store unreachable",
    }
