"""Memory faults: ``memory.limit`` (cgroup limit, a real OOM kill when exceeded) and
``memory.stress`` (a hog that holds X bytes)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from pydantic import Field

from ..system.cgroups import Group
from ..units import Size
from . import register
from ._cgroupfault import CgroupFault, CgroupFiles
from ._hogfault import HogFault, HogParams
from ._hogs import python_argv
from .base import FaultParams
from .settings import Setting


class LimitParams(FaultParams):
    limit: Size = Field(gt=0, description="Memory the target may use (e.g. 64MB); above it the kernel OOM-kills.")


@register
class MemoryLimit(CgroupFault[LimitParams]):
    """On cgroup v1 and v2 alike, memory already charged elsewhere is not moved with a moved
    process: the limit counts what the target allocates from now on. A target with its own cgroup
    is limited in place (v2 OOM-kills at once when below usage; v1 refuses with EBUSY)."""

    name = "memory.limit"
    summary = "Limit the target's memory with a cgroup; going above it gets a real OOM kill."
    controller = "memory"
    # cgroup v1 refuses a limit below the memory in use; a target above it for a burst (a request
    # that allocates and frees) gets the limit once the burst is over, one that stays above it is
    # refused after this long
    busy_for = 2.0

    def setting(self, group: Group) -> Setting:
        d, version = group.directory("memory")
        return CgroupFiles(d, ("memory.limit_in_bytes",) if version == 1 else ("memory.max",))

    def value(self, group: Group) -> Any:
        return [str(self.params.limit)]

    def apply(self, group: Group) -> None:
        super().apply(group)
        _no_swap_escape(group, self.params.limit)

    def refused(self, group: Group, exc: OSError) -> str | None:
        if exc.errno != errno.EBUSY:
            return None
        return (f"{self.name}: {self.params.limit} bytes is below what the kernel can reclaim from the "
                f"target's memory in use ({group.memory_usage()} bytes now), for {self.busy_for:g} s of tries "
                f"(cgroup v1 refuses such a limit; v2 would OOM-kill)")


def _no_swap_escape(group: Group, limit: int) -> None:
    """In our own v1 cgroup, cap memory+swap too, so a machine with swap still OOM-kills."""
    d, version = group.directory("memory")
    memsw = Path(d) / "memory.memsw.limit_in_bytes"
    if version == 1 and memsw.exists():
        memsw.write_text(str(limit))
    elif version == 2 and (Path(d) / "memory.swap.max").exists():
        (Path(d) / "memory.swap.max").write_text("0")


class StressParams(HogParams):
    size: Size = Field(gt=0, description="Bytes the hog allocates and keeps resident (e.g. 512MB).")


# Allocates and touches every page once (so it is resident), then sleeps until stopped.
_HOG = """
import sys, time
size = int(sys.argv[1])
block = bytearray(size)
for i in range(0, size, 4096):
    block[i] = 1
while True:
    time.sleep(3600)
"""


@register
class MemoryStress(HogFault[StressParams]):
    name = "memory.stress"
    summary = "Allocate and hold X bytes, in the target's cgroup or system-wide."
    controller = "memory"

    def stress_ng_argv(self) -> list[str]:
        return ["stress-ng", "--vm", "1", "--vm-bytes", str(self.params.size), "--vm-hang", "0", "--vm-keep", "--quiet"]

    def builtin_argv(self) -> list[str]:
        return python_argv(_HOG, str(self.params.size))
