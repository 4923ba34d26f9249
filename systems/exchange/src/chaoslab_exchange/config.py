"""Settings of the trading API: CLI flags, each defaulting to an EXCHANGE_* env var."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"EXCHANGE_{name.upper()}", default)


LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/exchange"
    redis_url: str = "redis://127.0.0.1:6379/0"
    spool_dir: Path = field(default_factory=lambda: Path("/var/tmp/exchange-spool"))
    db_timeout: float = 2.0  # per PostgreSQL call attempt
    redis_timeout: float = 0.5  # per Redis call attempt
    pg_pool_size: int = 4
    breaker_failures: int = 3
    breaker_reset: float = 2.0
    # A PostgreSQL write slower than this (plus SLOW_PER_ROW a row) counts as a breaker failure.
    # 0.3 s: a healthy commit takes milliseconds, one under 05's write throttle 0.5-1.3 s, and
    # with one batch in flight an order waits two commits: acknowledgements of 1.3 s fill a
    # 64-connection client at 50 orders/s (docs/results.md, 05).
    slow_call: float = 0.3
    order_deadline: float = 3.0  # an order not committed this long after arrival is spooled
    max_inflight: int = 1000  # admission bound: beyond it POST /orders answers 429
    max_batch: int = 500  # orders per group-commit transaction
    replay_chunk: int = 2000  # spool records per replay transaction
    max_pending_trades: int = 200_000
    startup_timeout: float = 5.0  # wait this long for PostgreSQL before starting without it
    shutdown_flush: float = 5.0  # on SIGTERM, try this long to flush the spool
    health_interval: float = 0.5
    log_level: str = "info"


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m chaoslab_exchange.api",
        description="Trading API of the simulated exchange. Every flag also reads "
        "EXCHANGE_<FLAG> from the environment (e.g. EXCHANGE_PG_DSN).",
    )
    defaults = Settings()
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        kind = type(default)
        env_value = _env(f.name, default)
        try:
            value = kind(env_value)
        except ValueError:
            parser.error(f"EXCHANGE_{f.name.upper()}={env_value!r} is not a valid {kind.__name__}")
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=kind, default=value,
            choices=LOG_LEVELS if f.name == "log_level" else None,
            help=f"(default: {default}; env EXCHANGE_{f.name.upper()})",
        )
    ns = parser.parse_args(argv)
    if not ns.pg_dsn.startswith(("postgres://", "postgresql://")):
        parser.error(f"--pg-dsn must be a postgresql:// URL, got {ns.pg_dsn!r}")
    if not ns.redis_url.startswith(("redis://", "rediss://", "unix://")):
        parser.error(f"--redis-url must be a redis:// URL, got {ns.redis_url!r}")
    return Settings(**vars(ns))
