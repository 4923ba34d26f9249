"""``postgres:`` — a PostgreSQL server of its own, initialised into the stack's state directory.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user. The
app's role and database are created in single-user mode before the first start, so the DSN
works the moment the server accepts connections. Authentication is ``trust`` on loopback: this
is a lab database on 127.0.0.1, and it keeps the DSN independent of how the cluster was made.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from pathlib import Path

from ..errors import StackError
from ..model import Service
from ..plan import HealthPlan, ServicePlan
from .base import Context, Kind, User, check_reachable, resolve_user


def _bin_dir(name: str, given: str | None) -> Path:
    if given:
        candidates = [Path(given)]
    else:
        candidates = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                              key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                                              reverse=True)]
    for d in candidates:
        if (d / "postgres").is_file() and (d / "initdb").is_file():
            return d
    where = given or "/usr/lib/postgresql/*/bin"
    raise StackError(f"service {name!r}: PostgreSQL server binaries not found in {where} "
                     "(install the Debian package postgresql-15)")


def _quote_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _quote_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class Postgres(Kind):
    name = "postgres"

    def plan(self, ctx: Context, name: str, svc: Service) -> ServicePlan:
        spec = svc.postgres
        assert spec is not None
        bindir = _bin_dir(name, spec.bin_dir)
        data = ctx.path(spec.data_dir) if spec.data_dir else ctx.service_dir(name) / "data"
        if os.geteuid() == 0 and (svc.user or "postgres").split(":")[0] in ("root", "0"):
            raise StackError(f"service {name!r}: PostgreSQL refuses to run as root; drop user: or use another user")
        argv = [
            str(bindir / "postgres"), "-D", str(data), "-p", str(spec.port),
            "-c", f"listen_addresses={spec.listen}",
            "-c", f"max_connections={spec.max_connections}",
            "-c", f"fsync={'on' if spec.fsync else 'off'}",
            "-c", "unix_socket_directories=",
            "-c", "logging_collector=off",
        ]
        for key, value in spec.settings.items():
            v = ("on" if value else "off") if isinstance(value, bool) else value
            argv += ["-c", f"{key}={v}"]
        dsn = f"postgresql://{spec.user}:{spec.password}@{spec.listen}:{spec.port}/{spec.database}"
        ready = [str(bindir / "pg_isready"), "-q", "-h", spec.listen, "-p", str(spec.port),
                 "-d", spec.database, "-U", spec.user]
        return ServicePlan(
            name=name,
            kind=self.name,
            argv=argv,
            user="postgres" if os.geteuid() == 0 else None,
            ports=[spec.port],
            health=HealthPlan("command", {"argv": ready}, interval=1.0, timeout=2.0),
            stop_signal="SIGINT",  # fast shutdown; SIGTERM would wait for every client to leave
            info={
                "data_dir": str(data),
                "address": f"{spec.listen}:{spec.port}",
                "dsn": dsn,
                "database": spec.database,
                "user": spec.user,
                "password": spec.password,
                "bin_dir": str(bindir),
                "bootstrap": {"database": spec.database, "user": spec.user, "password": spec.password},
            },
        )

    def prepare(self, ctx: Context, plan: ServicePlan) -> None:
        data = Path(plan.info["data_dir"])
        bindir = Path(plan.info["bin_dir"])
        user = resolve_user(plan.name, plan.user) if plan.user else None
        if user is not None:
            check_reachable(plan.name, data.parent, user)
        data.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(data.parent, user.uid, user.gid)
        if not (data / "PG_VERSION").exists():
            self._run(plan.name, user, [str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                        "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"], None)
        marker = data.parent / "bootstrap.json"
        wanted = json.dumps(plan.info["bootstrap"], sort_keys=True)
        if marker.exists() and marker.read_text() == wanted:
            return
        boot = plan.info["bootstrap"]
        role, db = _quote_ident(boot["user"]), _quote_ident(boot["database"])
        # Single-user mode runs one statement per line; "already exists" errors are harmless.
        sql = "\n".join([
            f"CREATE ROLE {role} LOGIN PASSWORD {_quote_literal(boot['password'])};",
            f"ALTER ROLE {role} LOGIN PASSWORD {_quote_literal(boot['password'])};",
            f"CREATE DATABASE {db} OWNER {role};",
            "",
        ])
        self._run(plan.name, user, [str(bindir / "postgres"), "--single", "-D", str(data),
                                    "-c", "unix_socket_directories=", "postgres"], sql)
        marker.write_text(wanted)

    @staticmethod
    def _run(service: str, user: User | None, argv: list[str], stdin: str | None) -> None:
        env = dict(os.environ, LC_ALL="C")
        if user is not None:
            env["HOME"] = user.home
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, cwd="/", timeout=120, check=False,
            user=user.uid if user else None, group=user.gid if user else None,
            extra_groups=user.groups if user else None,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StackError(f"service {service!r}: {os.path.basename(argv[0])} failed: {last}")
