"""The live stream follows the journal as it grows, resumes at Last-Event-ID without a gap or a
duplicate, holds back a torn line, and ends once the summary is written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.serve.plant import plant_run

RUN = "20261201-120000-live-0001"


def events(url: str, headers: dict[str, str], stop_after: int, timeout: float = 20) -> list[tuple[str, str, str]]:
    """(id, event, data) of the first ``stop_after`` events of the stream."""
    out: list[tuple[str, str, str]] = []
    ident, kind, data = "", "message", ""
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                out.append((ident, kind, data))
                ident, kind, data = "", "message", ""
                if len(out) >= stop_after or kind == "end":
                    break
    return out


def test_stream_follows_resumes_and_ends(serve: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    d = plant_run(runs, RUN, outcome=None)
    journal = d / "journal.jsonl"
    server = serve("--runs-dir", str(runs))
    url = f"{server.url}/runs/{RUN}/stream"

    first = events(url, {}, 2)
    assert [json.loads(e[2])["type"] for e in first] == ["run", "phase"]
    assert int(first[-1][0]) == journal.stat().st_size  # the id is the byte offset past the line

    # records appended while nobody watches, and a torn line (a write in progress)
    with open(journal, "a") as f:
        for i in range(5):
            f.write(json.dumps({"type": "sample", "t": 1 + i, "probe": "p", "ok": True}) + "\n")
        f.write('{"type": "sample", "t": 9, "pro')
    resumed = events(url, {"last-event-id": first[-1][0]}, 5)
    assert [json.loads(e[2])["t"] for e in resumed] == [1, 2, 3, 4, 5]  # no gap, no duplicate

    # the torn line comes whole once it is finished, then the summary ends the stream
    def finish() -> None:
        time.sleep(0.5)
        with open(journal, "a") as f:
            f.write('be": "p", "ok": false}\n')
        time.sleep(0.3)
        (d / "summary.json").write_text(json.dumps({"outcome": "held"}))

    threading.Thread(target=finish).start()
    tail = events(url, {"last-event-id": resumed[-1][0]}, 3)
    assert json.loads(tail[0][2]) == {"type": "sample", "t": 9, "probe": "p", "ok": False}
    assert tail[1][1] == "end" and len(tail) == 2

    # a replay from the start shows the same records the live view showed
    replay = events(url, {}, 100)
    assert [e[2] for e in replay[:2]] == [e[2] for e in first]
    assert [e[2] for e in replay[2:7]] == [e[2] for e in resumed]
    assert replay[-1][1] == "end"


def test_stream_reads_only_what_was_appended(tmp_path: Path, monkeypatch: Any) -> None:
    """live.follow reads from its offset on: a 20 MB journal costs a tail reader nothing (every
    read the stream makes, spied on, starts at or past the offset it was given)."""
    import asyncio
    import os

    from chaoslab.serve import live

    d = tmp_path / "run"
    d.mkdir()
    big = ("x" * 1000 + "\n") * 20_000
    (d / "journal.jsonl").write_text(big + '{"type": "phase", "t": 1, "name": "fault"}\n')
    reads: list[tuple[int, int]] = []
    real_pread = os.pread

    def spy(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        reads.append((offset, len(data)))
        return data

    monkeypatch.setattr(live.os, "pread", spy)

    async def first_event() -> str:
        gen = live.follow(d, len(big))
        assert (await gen.__anext__()).startswith("retry")
        chunk = await gen.__anext__()
        await gen.aclose()
        return chunk

    chunk = asyncio.run(first_event())
    assert '"fault"' in chunk and chunk.count("data: ") == 1
    assert reads and all(offset >= len(big) for offset, _ in reads), reads
    assert sum(n for _, n in reads) < 1000


def op(i: int, t: float, latency: float, outcome: str = "ok") -> str:
    return json.dumps({"id": i, "key": f"k-{i}", "t_scheduled": t, "t_sent": t, "t_done": t + latency,
                       "outcome": outcome, "status": 201, "latency": latency, "ack": True},
                      separators=(",", ":")) + "\n"


def test_stream_sends_latency_percentiles_of_the_windows_that_changed(serve: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    d = plant_run(runs, RUN, outcome=None)
    history = d / "history.jsonl"
    with open(history, "w") as f:
        f.write('{"type":"load","run":"x","kind":"http","rate":100.0,"t_start":0.0}\n')
        for i in range(100):  # window 0: 1..100 ms
            f.write(op(i, i * 0.01, (i + 1) / 1000))
        f.write(op(100, 0.5, 9.0, outcome="timeout"))  # not a success: not in the percentiles
    server = serve("--runs-dir", str(runs))
    url = f"{server.url}/runs/{RUN}/stream"

    def latency_events(n: int) -> list[dict[str, Any]]:
        got = events(url, {"last-event-id": str((d / "journal.jsonl").stat().st_size)}, n)
        return [json.loads(data) for _, kind, data in got if kind == "latency"]

    first = latency_events(1)
    assert first == [{"0": {"p50": 0.05, "p99": 0.099, "n": 100}}]
    # the generator writes on: the next event names only the window that changed, and a
    # reconnect (history read again from its start) gives the same figures
    with open(history, "a") as f:
        f.write(op(101, 1.2, 0.5))
    again = latency_events(1)
    assert again == [{"0": {"p50": 0.05, "p99": 0.099, "n": 100}, "1": {"p50": 0.5, "p99": 0.5, "n": 1}}]

    def follow_two() -> list[str]:
        import asyncio

        from chaoslab.serve import live

        async def go() -> list[str]:
            gen = live.follow(d, (d / "journal.jsonl").stat().st_size, poll=0.01)
            out = [await gen.__anext__() for _ in range(2)]
            with open(history, "a") as f:
                f.write(op(102, 2.1, 0.25))
            out.append(await gen.__anext__())
            await gen.aclose()
            return out

        return asyncio.run(go())

    retry, whole, update = follow_two()
    assert retry.startswith("retry") and '"0"' in whole
    assert update == 'event: latency\ndata: {"2": {"p50": 0.25, "p99": 0.25, "n": 1}}\n\n'


def test_runs_stream_sends_what_changed_since_its_last_event_id(serve: Any, tmp_path: Path) -> None:
    """The Runs page's stream: from seq 0 every row; resumed at its last id, only the rows
    written since (a new run, a verdict), the filters applied (a row leaving them is dropped)."""
    runs = tmp_path / "runs"
    plant_run(runs, "20261201-100000-a-0001", title="A")
    live = plant_run(runs, "20261201-110000-b-0002", title="B", started_at=1.8e9 + 60, outcome=None)
    server = serve("--runs-dir", str(runs))
    url = f"{server.url}/api/runs/stream"

    first = events(url, {}, 1)
    body = json.loads(first[0][2])
    assert sorted(r["run_id"] for r in body["rows"]) == ["20261201-100000-a-0001", "20261201-110000-b-0002"]
    assert int(first[0][0]) == body["seq"] and body["drop"] == []

    plant_run(runs, "20261201-120000-c-0003", title="C", started_at=1.8e9 + 120)
    resumed = json.loads(events(url, {"last-event-id": first[0][0]}, 1)[0][2])
    assert [r["run_id"] for r in resumed["rows"]] == ["20261201-120000-c-0003"]
    assert "held" in resumed["rows"][0]["html"]

    # following only the running ones: B's verdict takes it off the page
    (live / "summary.json").write_text(json.dumps({"outcome": "violated", "started_at": 1.8e9 + 60}))
    only_running = json.loads(events(f"{url}?outcome=running", {"last-event-id": str(resumed["seq"])}, 1)[0][2])
    assert only_running["rows"] == [] and only_running["drop"] == ["20261201-110000-b-0002"]
