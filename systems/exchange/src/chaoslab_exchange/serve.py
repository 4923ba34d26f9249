"""Run an ASGI app the same way for every exchange process: uvicorn on uvloop."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp


def serve(app: ASGIApp, host: str, port: int) -> int:
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", access_log=False,
        log_level="warning",
        # Nothing here trusts X-Forwarded-For, and the middleware costs a layer per request.
        proxy_headers=False, server_header=False,
        # SIGTERM: uvicorn stops accepting, waits for in-flight requests (bounded), then
        # runs the app's lifespan shutdown.
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
