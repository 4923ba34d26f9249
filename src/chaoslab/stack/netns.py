"""Entering a test host's network namespace from one thread, for health checks and port checks.

``setns(CLONE_NEWNET)`` changes only the calling thread, so a health-check thread can step into
a host's namespace, connect, and step back while the rest of the supervisor stays outside.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(netns: str | None) -> Iterator[None]:
    """Run the body in ``/run/netns/<netns>`` (no-op for None); sockets made there stay there."""
    if netns is None:
        yield
        return
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(orig)
    finally:
        os.close(orig)
