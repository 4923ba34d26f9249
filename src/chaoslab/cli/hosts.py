"""``chaoslab hosts``: the click group over ``chaoslab.system.hosts`` (test hosts in network namespaces)."""

from __future__ import annotations

import subprocess

import click

from ..errors import ChaoslabError, InputError
from ..system.hosts import bridge, command, create, destroy, find, halves, heal, isolate, load, nets


def _fail(exc: ChaoslabError) -> None:
    click.echo(f"error: {exc}", err=True)
    raise SystemExit(exc.exit_code)


@click.group("hosts")
def hosts() -> None:
    """Test hosts: network namespaces on a bridge (create, run commands, partition, tear down)."""


@hosts.command("up")
@click.argument("net")
@click.option("--hosts", "names", default="n1,n2,n3", show_default=True, help="Comma-separated host names.")
@click.option("--subnet", default="10.77.0.0/24", show_default=True)
def _up(net: str, names: str, subnet: str) -> None:
    """Create the hosts of NET."""
    try:
        created = create(net, [n.strip() for n in names.split(",") if n.strip()], subnet)
    except ChaoslabError as exc:
        _fail(exc)
        return
    for h in created.hosts:
        click.echo(f"{net}/{h.name}  {h.address}  netns {h.netns}")


@hosts.command("down")
@click.argument("net")
def _down(net: str) -> None:
    """Remove NET's hosts, veths and bridge."""
    destroy(net)


@hosts.command("list")
def _list() -> None:
    """Show the nets and their hosts."""
    for n in nets():
        click.echo(f"{n.name} ({n.subnet}, bridge {n.bridge})")
        for h in n.hosts:
            click.echo(f"  {h.name}  {h.address}  netns {h.netns}")


@hosts.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def _run(host: str, argv: tuple[str, ...]) -> None:
    """Run a command in HOST (net/host): chaoslab hosts run lab/n1 -- ping -c1 10.77.0.2"""
    try:
        h = find(host)
    except ChaoslabError as exc:
        _fail(exc)
        return
    raise SystemExit(subprocess.call(command(h, argv)))


@hosts.command("partition")
@click.argument("net")
@click.option("--isolate", "isolated", metavar="HOST", help="Cut HOST off from every other host.")
@click.option("--halves", "split", is_flag=True, help="Split the hosts into two halves.")
@click.option("--bridge", "bridged", is_flag=True, help="Two halves joined only by the middle host.")
@click.option("--heal", "healed", is_flag=True, help="Remove the partition.")
def _partition(net: str, isolated: str | None, split: bool, bridged: bool, healed: bool) -> None:
    """Partition NET's hosts, Jepsen style."""
    try:
        n = load(net)
        if sum([bool(isolated), split, bridged, healed]) != 1:
            raise InputError("give exactly one of --isolate HOST, --halves, --bridge, --heal")
        if isolated:
            isolate(n, isolated)
        elif split:
            halves(n)
        elif bridged:
            bridge(n)
        else:
            heal(n)
    except ChaoslabError as exc:
        _fail(exc)


__all__ = ["hosts"]
