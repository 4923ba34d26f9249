"""``python -m chaoslab_exchange.api --port N --pg-dsn ... --redis-url ... --spool-dir ...``"""

from __future__ import annotations

import logging
import sys

from chaoslab_exchange.app import create_asgi
from chaoslab_exchange.config import parse_args
from chaoslab_exchange.serve import serve


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"chaoslab_exchange.api: cannot use spool dir {settings.spool_dir}: {e}", file=sys.stderr)
        return 2
    return serve(create_asgi(settings), settings.host, settings.port)


if __name__ == "__main__":
    sys.exit(main())
