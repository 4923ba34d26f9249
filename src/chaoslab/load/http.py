"""The HTTP driver: requests rendered from templates, acks judged from status and body."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from .. import jsonpath
from ..errors import InputError
from ..experiment.workload import HttpLoad
from . import template
from .connection import ConnectError, Pool, Target, encode_request
from .driver import Cancel, Done, Result
from .poison import Poisoner


class HttpDriver:
    def __init__(self, spec: HttpLoad, run: str) -> None:
        self.spec = spec
        self.run = run
        try:
            self.target = Target(template.render(spec.url, {"seq": 0, "key": "", "run": run}))
        except ValueError as exc:
            raise InputError(str(exc), field="load.http.url") from None
        self._pool: Pool | None = None
        self._accepted = frozenset(spec.ack.status if spec.ack else range(200, 400))
        self._indeterminate = frozenset(spec.ack.indeterminate if spec.ack else ())
        self._keep_body = spec.ack is not None and spec.ack.id is not None
        self._headers = dict(spec.headers)
        if spec.body is not None and not isinstance(spec.body, str):
            self._headers.setdefault("Content-Type", "application/json")
        self._poisoner = Poisoner(spec.poison) if spec.poison is not None else None
        self._dynamic = self._poisoner is not None or not (template.is_static(spec.body) and template.is_static(spec.url))
        self._static = None if self._dynamic else self._encode(self.target.path, spec.body)
        self._acked: list[tuple[int, str, str]] = []  # (seq, key, ack id): what a retry re-sends

    def _retry_of(self, seq: int) -> tuple[int, str, str] | None:
        """The acknowledged operation that operation ``seq`` re-sends, if it is a retry.
        Every 1/share-th operation, spread evenly; the original picked deterministically."""
        share = self.spec.retry_acked
        if share is None or not self._acked or int((seq + 1) * share) == int(seq * share):
            return None
        return self._acked[(seq * 7919) % len(self._acked)]

    def poison_kind(self, seq: int) -> str | None:
        """The defect operation ``seq`` carries (None: a well-formed one); the generator tags it."""
        return self._poisoner.kind(seq) if self._poisoner is not None else None

    def _encode(self, path: str, body: Any, kind: str | None = None) -> bytes:
        data: bytes | None = None
        if kind is not None and self._poisoner is not None:
            data = self._poisoner.encode(kind, body)
        elif body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body, separators=(",", ":")).encode()
        return encode_request(self.spec.method, self.target, path, self._headers, data)

    async def start(self) -> None:
        self._pool = Pool(self.target, min(self.spec.connections, self.spec.concurrency), self._keep_body)

    def _request(self, seq: int, key: str) -> bytes:
        if self._static is not None:
            return self._static
        values: dict[str, Any] = {"seq": seq, "key": key, "run": self.run}
        target = Target(template.render(self.spec.url, values))
        if not target.same_origin(self.target):
            raise ValueError(f"templated URL {self.spec.url!r} must keep one host and port")
        return self._encode(target.path, template.render(self.spec.body, values), self.poison_kind(seq))

    def submit(self, seq: int, key: str, done: Done) -> Cancel:
        assert self._pool is not None, "start() first"
        if self._static is not None and self.spec.retry_acked is None:
            # the common case, kept lean (bench/loadgen.py): no template, no retry, no closure
            return self._pool.submit(self._static, self._keep_body, partial(self._reply, done))
        retry = self._retry_of(seq)
        try:
            raw = self._request(seq, key) if retry is None else self._request(retry[0], retry[1])
        except ValueError as exc:
            done(Result(False, error=str(exc)))
            return _nothing
        if retry is not None:
            return self._pool.submit(
                raw, True, lambda status, body, exc: done(self._retried(retry, self._result(status, body, exc)))
            )

        def first(status: int | None, body: bytes, exc: Exception | None) -> None:
            res = self._result(status, body, exc)
            if res.ack and res.ack_id is not None and self.spec.retry_acked is not None:
                self._acked.append((seq, key, res.ack_id))
            done(res)

        return self._pool.submit(raw, self._keep_body, first)

    def _reply(self, done: Done, status: int | None, body: bytes, exc: Exception | None) -> None:
        done(self._result(status, body, exc))

    @staticmethod
    def _retried(original: tuple[int, str, str], res: Result) -> Result:
        """A retry naming the original id is no new write (no ack). One naming another id was
        acknowledged as a new write: recorded as such (with the error saying so), so the final
        read counts it lost if it is never stored, the way issue 16's retries were."""
        if not res.ok or res.ack_id == original[2]:
            return res if not res.ok else Result(True, res.status)
        return Result(True, res.status, ack=True, ack_id=res.ack_id,
                      error=f"retry of {original[1]} answered id {res.ack_id}, the original was {original[2]}")

    def _result(self, status: int | None, body: bytes, exc: Exception | None) -> Result:
        if isinstance(exc, ConnectError):
            # the connection was never made: the request cannot have been applied
            return Result(False, refused=True, error=f"connect: {exc}")
        if exc is not None or status is None:
            return Result(False, error=str(exc))
        if status not in self._accepted:
            return Result(False, status, refused=status not in self._indeterminate, error=f"HTTP {status}")
        if not self._keep_body:
            return Result(True, status, ack=self.spec.ack is not None)
        assert self.spec.ack is not None and self.spec.ack.id is not None
        try:
            ack_id = str(jsonpath.get(json.loads(body), self.spec.ack.id))
        except (ValueError, jsonpath.PathError) as exc:
            return Result(False, status, error=f"acknowledged without an id at {self.spec.ack.id}: {exc}")
        return Result(True, status, ack=True, ack_id=ack_id)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def _nothing() -> None:
    return None
