"""The local index of the order log: every order the API sent to PostgreSQL, beside the spool.

Why: an API that starts while PostgreSQL is unreachable must still know every committed
order, or a client's retry of a committed ``client_order_id`` looks new (a second order, a
new order_id that the later insert drops on the unique key) and the book it rebuilds lacks
resting orders, so fills diverge from PostgreSQL's (issue 16: over-traded orders).

Format: JSON lines. ``{"i": [records]}`` is written *before* a batch is sent to PostgreSQL,
``{"c": n}`` after PostgreSQL confirmed it. Intent first, so no committed order is ever
missing from the index, whatever instant the API is killed at. An intent without its
confirmation is a batch whose fate is unknown (killed mid-commit, or the insert failed and
the batch went to the spool): on a start without PostgreSQL its records are put back into the
spool, whose replay is idempotent (ON CONFLICT DO NOTHING), so such an order is either already
in PostgreSQL or will be; a retry of it then gets the original, as promised.

Written without fsync: it survives a crash of the API (the page cache keeps it), not a crash of
the machine; after a machine crash with PostgreSQL unreachable the API starts with
``book: partial`` and refuses ids it cannot prove new (see service.py). Compacted from
PostgreSQL on every start that can read it, so it is never longer than the order log plus
what happened since the last such start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from chaoslab_exchange.spool import Record


class OrderIndex:
    NAME = "orders.index"

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.NAME
        self._file: int | None = None

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> tuple[list[Record], list[Record]]:
        """(confirmed records, records of unconfirmed intents)."""
        confirmed: list[Record] = []
        unsure: list[Record] = []
        intent: list[Record] | None = None
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], []
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                break  # a torn last line: its batch was never sent
            if "i" in entry:
                if intent is not None:
                    unsure.extend(intent)
                intent = entry["i"]
            elif "c" in entry and intent is not None:
                confirmed.extend(intent)
                intent = None
        if intent is not None:
            unsure.extend(intent)
        # A failed batch goes to the spool, whose replay is confirmed later: not unsure then.
        done = {r["order_id"] for r in confirmed}
        return confirmed, [r for r in unsure if r["order_id"] not in done]

    def rewrite(self, records: list[Record]) -> None:
        """Replace the index by ``records`` (all confirmed): fsynced, then renamed."""
        self.close()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            if records:
                f.write(json.dumps({"i": records}, separators=(",", ":")).encode() + b"\n")
                f.write(b'{"c":1}\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _write(self, payload: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._file, payload)

    def intent(self, records: list[Record]) -> None:
        if records:
            self._write(json.dumps({"i": records}, separators=(",", ":")).encode() + b"\n")

    def confirm(self, count: int) -> None:
        if count:
            self._write(b'{"c":%d}\n' % count)

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
