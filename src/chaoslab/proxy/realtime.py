"""The proxy's scheduling class: what keeps a latency toxic on time when the machine is busy.

A delayed chunk is released by the event loop's thread; when other work holds the CPU, the
release waits for the scheduler (a 50 ms toxic measured 13 ms late at p99 beside
``stress-ng --cpu 2``). A real-time class makes the kernel run the proxy as soon as it is woken.

By default the proxy never asks for one: a real-time process outranks everything else on the
machine, the system under test included, and a chaos tool must not change how the system it
tests is scheduled unless told to. Two ways to ask, chosen in ``chaoslab proxy serve``:

- ``--realtime-toxics`` (``TimingPriority``): the loop thread asks for ``SCHED_RR`` 1, the lowest real-time
  priority, *while at least one toxic is set* on some proxy, and returns to ``SCHED_OTHER`` when
  the last one goes. A proxy only forwarding (the spliced path, most of its CPU) then competes
  like any process and never takes a core from the system under test; a proxy timing releases
  gets its wake-ups on time. The kernel refuses without CAP_SYS_NICE or RLIMIT_RTPRIO, or in a
  cgroup with no real-time budget: one line on stderr, and toxics are timed with ordinary
  scheduling.
- ``--realtime PRIORITY`` (``go_realtime``): every thread at ``SCHED_FIFO`` from the start,
  whatever the toxics; a warning when refused.

The kernel's real-time throttling (``sched_rt_runtime_us``, 95 % by default) keeps a flooded
proxy from taking a core entirely.
"""

from __future__ import annotations

import os
import sys

RR_PRIORITY = 1


def go_realtime(priority: int) -> bool:
    """SCHED_FIFO ``priority`` for this process, before any thread exists so that every thread
    it starts inherits it. When the kernel refuses: a warning, and ordinary scheduling."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        print(f"warning: the kernel refused SCHED_FIFO {priority} ({exc.strerror or exc}): the proxy runs with "
              "ordinary scheduling, so other load on the machine shows up in its latency", file=sys.stderr,
              flush=True)
        return False
    print(f"chaoslab proxy: running at SCHED_FIFO {priority}", file=sys.stderr, flush=True)
    return True


class TimingPriority:
    """SCHED_RR for the calling (event loop) thread while toxics are set; see the module text."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and hasattr(os, "sched_setscheduler")
        self.on = False
        self._refused = False

    def toxics_set(self, count: int) -> None:
        """Called on the loop's thread after anything may have changed the number of toxics."""
        want = self.enabled and count > 0 and not self._refused
        if want == self.on:
            return
        try:
            if want:
                os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RR_PRIORITY))
            else:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError as exc:
            if want:
                self._refused = True  # asked once: the answer will not change while we run
                print(f"chaoslab proxy: the kernel refused SCHED_RR {RR_PRIORITY} ({exc.strerror or exc}): toxics are "
                      "timed with ordinary scheduling", file=sys.stderr,
                      flush=True)
            return
        self.on = want
