"""schemathesis against the API's own OpenAPI document: no generated input, valid or
not, may produce a 5xx. Bounded examples so the whole run stays under a minute."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from exchange_servers import ApiServer, PgServer, RedisServer
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok


@pytest.fixture(scope="module")
def api_schema(pg: PgServer) -> Iterator[schemathesis.BaseSchema]:
    if not pg.alive:
        pg.start()
    base = Path(tempfile.mkdtemp(prefix="chaoslab-exchange-schema-"))
    redis = RedisServer(base)
    api: ApiServer | None = None
    try:
        redis.start()
        api = ApiServer(base, pg.dsn(pg.create_database()), redis.url)
        api.start()
        schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
        schema.config.generation.update(max_examples=40)
        yield schema
    finally:
        if api is not None:
            api.kill()
        redis.kill()
        shutil.rmtree(base, ignore_errors=True)


# Driven by hand rather than through schemathesis' pytest plugin, which does not load
# under pytest 9 ("'Function' object has no attribute '_nodeid'").
def test_no_server_error_on_generated_input(api_schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    tried = 0
    for result in api_schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"the API's own OpenAPI document is invalid: {result.err()}")
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case: schemathesis.Case[Any]) -> None:
                nonlocal tried
                tried += 1
                response = case.call(timeout=10)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} {case.body!r} -> "
                        f"{response.status_code} {response.text[:200]}"
                    )

            try:
                check()
            except Unsatisfiable:
                # No invalid input exists for an operation without parameters (/health).
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert tried > 100
    assert not failures, "\n".join(failures[:10])
