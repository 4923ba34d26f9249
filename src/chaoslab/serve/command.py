"""The ``chaoslab serve`` command: settings, the token, uvicorn."""

from __future__ import annotations

import logging
import secrets
import socket
import sys
from pathlib import Path

import click

from ..errors import ExitCode


@click.command("serve")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("chaoslab-runs"),
              show_default=True, help="The run directories to show (and where started runs go).")
@click.option("--experiments", "experiments_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A directory of experiment files: the Catalog, with a Run button for each.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Any address but loopback needs a token.")
@click.option("--port", type=int, default=8440, show_default=True)
@click.option("--token", default=None, help="The sign-in token (off loopback one is generated if not given).")
@click.option("--read-only", is_flag=True, help="Hide and refuse every action (run, halt, clear).")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
              help="Passed as --var to every run and dry run started from the Catalog.")
def serve(runs_dir: Path, experiments_dir: Path | None, host: str, port: int, token: str | None,
          read_only: bool, variables: tuple[str, ...]) -> None:
    """The web console: watch, stop, compare and start runs."""
    import uvicorn

    from ..cli.commands import _vars
    from .app import Console, create_app
    from .security import Guard, is_loopback

    if experiments_dir is not None and not experiments_dir.is_dir():
        click.echo(f"chaoslab: --experiments {experiments_dir}: not a directory", err=True)
        sys.exit(ExitCode.INVALID_INPUT)
    if token is not None and len(token) < 16:
        click.echo("chaoslab: --token must be at least 16 characters", err=True)
        sys.exit(ExitCode.INVALID_INPUT)
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    guard = Guard(host, port, token, read_only=read_only)
    console = Console(runs_dir.resolve(), experiments_dir.resolve() if experiments_dir else None, guard,
                      _vars(variables))
    app = create_app(console)
    # The socket is bound here, not by uvicorn, so a port in use is one clear line and exit 4
    # (uvicorn would log its own error and exit 3, which chaoslab means as "aborted").
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        click.echo(f"chaoslab: cannot serve on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(ExitCode.COULD_NOT_RUN)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    click.echo(f"chaoslab console on {url}" + (" (read-only)" if read_only else ""))
    if token is not None:
        click.echo(f"sign in with the token: {url}login?token={token}")
    logging.basicConfig(level=logging.WARNING, format="chaoslab serve: %(message)s")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
