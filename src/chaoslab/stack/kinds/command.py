"""``command:`` — any program, as given."""

from __future__ import annotations

import os
import shlex
import shutil

from ..errors import StackError
from ..model import Service
from ..plan import ServicePlan
from .base import Context, Kind


class Command(Kind):
    name = "command"

    def plan(self, ctx: Context, name: str, svc: Service) -> ServicePlan:
        assert svc.command is not None
        argv = shlex.split(svc.command) if isinstance(svc.command, str) else list(svc.command)
        if not argv:
            raise StackError(f"service {name!r}: the command is empty")
        argv += svc.args
        cwd = ctx.path(svc.cwd) if svc.cwd else ctx.stack_dir
        path_var = str(svc.env.get("PATH", os.environ.get("PATH", os.defpath)))
        exe = argv[0]
        if "/" in exe:
            full = exe if os.path.isabs(exe) else os.path.join(cwd, exe)
            if not (os.path.isfile(full) and os.access(full, os.X_OK)):
                raise StackError(f"service {name!r}: {exe} is not an executable file")
        elif shutil.which(exe, path=path_var) is None:
            raise StackError(f"service {name!r}: command {exe!r} not found on PATH")
        return ServicePlan(name=name, kind=self.name, argv=argv)
