"""``python -m chaoslab_pipeline.s3 --port 8333 --base-port 21000 --dir D``: SeaweedFS's S3 on 127.0.0.1.

``weed mini`` runs master, volume, filer, S3, WebDAV and admin servers, each on a port of
its own, and binds every interface unless told (and a few fixed ports, 8181 and 9101, even
then): every one is placed on 127.0.0.1 and moved to ``base-port + i`` so that two copies
(and other engineers' tests) can run side by side. Replaces itself with weed (exec), so the
stack's signals reach it directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chaoslab_pipeline.tools import weed

PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
         "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port",
         "s3.port.iceberg", "s3.port.lance", "metricsPort")


def argv(port: int, base: int, data: Path, bind: str = "127.0.0.1") -> list[str]:
    # -ip is what its own servers tell each other (always in this process's network namespace)
    args = [str(weed()), "mini", f"-dir={data}", "-ip=127.0.0.1", f"-ip.bind={bind}",
            f"-s3.port={port}", "-admin.ui=false"]
    args += [f"-{name}={base + i}" for i, name in enumerate(PORTS)]
    return args


def main(av: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chaoslab_pipeline.s3")
    p.add_argument("--port", type=int, default=8333)
    p.add_argument("--base-port", type=int, default=21000)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--bind", default="127.0.0.1", help="listen address (a container's own: 0.0.0.0)")
    a = p.parse_args(av)
    a.dir.mkdir(parents=True, exist_ok=True)
    cmd = argv(a.port, a.base_port, a.dir.resolve(), a.bind)
    os.execv(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
