"""``chaoslab proxy``: run the fault proxy and look at its links. Heavy imports happen inside commands."""

from __future__ import annotations

import sys

import click

DEFAULT_API = "http://127.0.0.1:8474"


@click.group("proxy", help="Toxiproxy-compatible TCP fault proxy.")
def proxy() -> None:
    pass


@proxy.command("serve", help="Run the proxy and its HTTP API until SIGINT/SIGTERM.")
@click.option("--host", default="127.0.0.1", show_default=True, help="API listen host.")
@click.option("--port", default=8474, show_default=True, type=click.IntRange(0, 65535), help="API port (0: any free port).")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None, help="JSON/YAML list of proxies (may hold toxics).")
@click.option("--realtime", "realtime", type=click.IntRange(1, 99), default=None, is_flag=False, flag_value=1,
              help="Run at SCHED_FIFO PRIORITY (1 when given alone): other load cannot take the CPU from the "
                   "proxy's timers. Falls back to ordinary scheduling, with a warning, when the kernel refuses.")
@click.option("--realtime-toxics", "realtime_toxics", is_flag=True,
              help="While a toxic is set, run the proxy's loop at SCHED_RR 1, so a busy machine does not make "
                   "toxics late (root; one line and ordinary scheduling when the kernel refuses). Off by default: "
                   "a real-time proxy outranks everything else on the machine, the system under test included.")
def serve(host: str, port: int, config: str | None, realtime: int | None, realtime_toxics: bool) -> None:
    from ..errors import ChaoslabError
    from .server import run

    try:
        run(host, port, config, realtime=realtime, timing=realtime_toxics)
    except ChaoslabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        pass


@proxy.command("list", help="List the proxies and toxics of a running proxy.")
@click.option("--api", default=DEFAULT_API, show_default=True, help="Proxy API URL.")
def list_proxies(api: str) -> None:
    from ..errors import ExitCode, ProxyApiError
    from .client import ProxyClient

    try:
        proxies = ProxyClient(api).proxies()
    except ProxyApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.COULD_NOT_RUN)
    if not proxies:
        click.echo("no proxies")
        return
    for name, p in sorted(proxies.items()):
        state = "enabled" if p.get("enabled") else "disabled"
        click.echo(f"{name}: {p.get('listen')} -> {p.get('upstream')} ({state})")
        for t in p.get("toxics") or []:
            attrs = " ".join(f"{k}={v}" for k, v in (t.get("attributes") or {}).items())
            click.echo(f"  {t['name']}: {t['type']} {t['stream']} toxicity={t['toxicity']} {attrs}".rstrip())
