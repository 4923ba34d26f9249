"""What a system holds, found rather than described: ``discover(SOURCE)`` reads a Compose file,
a running Compose project (``compose:PROJECT``), a chaoslab stack file or a Kubernetes namespace
(``k8s:NAMESPACE``) into one ``System``; ``propose`` turns it into experiments and ``write`` into
a suite (``chaoslab init``).

Every bad source (a missing file, a syntax error, Docker or the API server unreachable, an empty
project or namespace) is an ``InputError``: one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .model import Dependency, Health, Port, Service, System

__all__ = ["Dependency", "Health", "Port", "Service", "System", "attach_faults", "discover", "target_kind"]

_KIND = {"compose": "compose", "stack": "service", "kubernetes": "pod"}


def target_kind(system: System) -> str:
    return _KIND[system.platform]


def discover(source: str, *, project: str | None = None, kubeconfig: str | None = None,
             context: str | None = None, faults: bool = True) -> System:
    for prefix in ("k8s:", "kubernetes:"):
        if source.startswith(prefix):
            from .kubernetes import load_namespace

            system = load_namespace(source[len(prefix):] or "default", kubeconfig, context)
            break
    else:
        if source.startswith("compose:"):
            from .compose import load_project

            system = load_project(source[len("compose:"):])
        else:
            system = _file(Path(source), project)
    if faults:
        attach_faults(system)
    return system


def _file(path: Path, project: str | None) -> System:
    from ..source import load_document
    from . import compose, stack

    if not path.exists():
        raise InputError("no such file (a Compose file, a stack file, compose:PROJECT or k8s:NAMESPACE)",
                         file=str(path))
    doc = load_document(path, substitute=False)
    if compose.is_compose(doc.data):
        return compose.load_file(path, project)
    if isinstance(doc.data, dict) and isinstance(doc.data.get("services"), dict):
        return stack.load_file(path)
    raise InputError("neither a Compose file nor a stack file (no services:)", file=str(path))


def attach_faults(system: System) -> None:
    """Each service's faults: those of `chaoslab doctor` that can run here and act on its kind of
    target. Destructive ones (container.remove, disk.fill) are listed; init proposes none of them."""
    from .. import faults as registry
    from ..cli.doctor import fault_table

    kind = target_kind(system)
    kinds = {n: c.target_kinds or frozenset() for n, c in registry.all_faults(skip_broken=True).items()}
    usable = sorted(r.fault for r in fault_table() if r.ok and kind in kinds.get(r.fault, frozenset()))
    for s in system.services.values():
        s.faults = list(usable)
