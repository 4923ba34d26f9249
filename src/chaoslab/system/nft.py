"""nftables plumbing shared by the network faults and the test hosts: one table per run.

A leaf module (it imports only ``errors``), so ``hosts`` and ``faults.netfilter`` can both use it.
A namespace is a test host's name or a namespace file (a container's ``/proc/<pid>/ns/net``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from ..errors import FaultError


def table_name(run_id: str) -> str:
    return "chaoslab_" + re.sub(r"[^A-Za-z0-9_]", "_", run_id)


def netns_prefix(netns: str | None) -> list[str]:
    """A named namespace (a test host) or a namespace file (a container's ``/proc/<pid>/ns/net``)."""
    if netns and netns.startswith("/"):
        return ["nsenter", f"--net={netns}"]
    return ["ip", "netns", "exec", netns] if netns else []


def nft(script: str, netns: str | None = None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*netns_prefix(netns), "nft", "-f", "-"], input=script, capture_output=True,
                          text=True, timeout=10)
    if check and proc.returncode != 0:
        where = f" in namespace {netns}" if netns else ""
        raise FaultError(f"nft failed{where}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return proc


def chains_of(table: str, netns: str | None = None) -> list[str] | None:
    """Chain names of ``inet <table>``; None when the table (or the namespace) does not exist."""
    proc = subprocess.run([*netns_prefix(netns), "nft", "-j", "list", "table", "inet", table],
                          capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        return None
    items = json.loads(proc.stdout).get("nftables", [])
    return [i["chain"]["name"] for i in items if "chain" in i]


def netns_exists(netns: str) -> bool:
    if netns.startswith("/"):
        return os.path.exists(netns)
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=5)
    return any(line.split()[0] == netns for line in proc.stdout.splitlines() if line.strip())


def drop_chains(table: str, chains: list[str], netns: str | None = None) -> None:
    """Delete ``chains`` from ``inet <table>`` (not the table: its owner record decides). Idempotent."""
    if netns and not netns_exists(netns):
        return  # the namespace (and its rules) is gone
    present = chains_of(table, netns)
    if present is None:
        return
    mine = [c for c in chains if c in present]
    script = "".join(f"flush chain inet {table} {c}\ndelete chain inet {table} {c}\n" for c in mine)
    if script:
        nft(script, netns)


__all__ = ["chains_of", "drop_chains", "netns_exists", "netns_prefix", "nft", "table_name"]
