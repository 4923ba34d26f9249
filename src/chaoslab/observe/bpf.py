"""The bpftrace program behind ``observe: {ebpf: [...]}``, tracepoints only (no kprobes needed).

Every tracer counts into maps keyed by the run-clock second (``(nsecs - t0) / 1e9``; bpftrace's
``nsecs`` and Python's ``time.monotonic()`` are both CLOCK_MONOTONIC), so the counts are aggregated
in the kernel and land in exactly the 1 s windows the analysis uses. A 1 s timer prints and clears
the maps; a second split across two prints is summed again by the reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Map name -> (tracer, meaning of the map key after the second). Counted maps hold count();
# the sched_wait maps hold sum/max in microseconds.
MAPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "retransmits": ("retransmits", ("port",)),
    "tcp_state": ("tcp_state", ("state", "port")),
    "rst_sent": ("resets", ("port",)),
    "rst_received": ("resets", ("port",)),
    "oom_kills": ("oom_kills", ("pid", "comm")),
    "sched_wait_n": ("sched_wait", ()),
    "sched_wait_sum": ("sched_wait", ()),
    "sched_wait_max": ("sched_wait", ()),
    "sched_target_n": ("sched_wait", ()),
    "sched_target_sum": ("sched_wait", ()),
    "sched_target_max": ("sched_wait", ()),
}

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}

# Tracer -> tracepoints it needs (checked with `bpftrace -l` before starting).
TRACEPOINTS: dict[str, tuple[str, ...]] = {
    "retransmits": ("tcp:tcp_retransmit_skb",),
    "tcp_state": ("sock:inet_sock_set_state",),
    "resets": ("tcp:tcp_send_reset", "tcp:tcp_receive_reset"),
    "oom_kills": ("oom:mark_victim",),
    "sched_wait": ("sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_switch"),
}

_SEC = "((nsecs - {t0}) / 1000000000)"

# Retransmits are keyed by the service side of the connection: the port outside the local
# ephemeral range when exactly one side is (5432, not the client's 41234), so both directions of
# a partitioned connection add up on one port; otherwise the destination port.
_PROGRAMS: dict[str, str] = {
    "retransmits": """
tracepoint:tcp:tcp_retransmit_skb {
  $p = args->dport;
  if ((args->sport < EPH_LO || args->sport > EPH_HI) && args->dport >= EPH_LO && args->dport <= EPH_HI) {
    $p = args->sport;
  }
  @retransmits[SEC, $p] = count();
}
""",
    # Keyed by the service side of the connection too, like the retransmits.
    "tcp_state": """
tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  $p = args->dport;
  if ((args->sport < EPH_LO || args->sport > EPH_HI) && args->dport >= EPH_LO && args->dport <= EPH_HI) {
    $p = args->sport;
  }
  @tcp_state[SEC, args->newstate, $p] = count();
}
""",
    # send_reset: the local port that answered with RST (a refused connect names the service port);
    # receive_reset: the remote port the RST came from.
    "resets": """
tracepoint:tcp:tcp_send_reset { @rst_sent[SEC, (args->saddr[2] << 8) | args->saddr[3]] = count(); }
tracepoint:tcp:tcp_receive_reset { @rst_received[SEC, args->dport] = count(); }
""",
    "oom_kills": """
tracepoint:oom:mark_victim { @oom_kills[SEC, args->pid, str(args->comm)] = count(); }
""",
    # Run-queue wait: wakeup (or preemption) -> switched in, like runqlat.bt but on tracepoints.
    # A preempted task (a CPU quota running out, too) is reported with the TASK_REPORT_MAX bit
    # (0x80 or 0x100 by kernel version, "R+"), not as 0: any value without a sleep state bit
    # (0x7f) is still runnable and starts waiting now.
    "sched_wait": """
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new { @sched_q[args->pid] = nsecs; }
tracepoint:sched:sched_switch {
  if ((args->prev_state & 0x7f) == 0 && args->prev_pid != 0) { @sched_q[args->prev_pid] = nsecs; }
  $ts = @sched_q[args->next_pid];
  if ($ts > 0) {
    $us = (nsecs - $ts) / 1000;
    @sched_wait_n[SEC] = count();
    @sched_wait_sum[SEC] = sum($us);
    @sched_wait_max[SEC] = max($us);
    delete(@sched_q[args->next_pid]);
    TARGET_STORE
  }
}
""",
}

# The targets' own run-queue wait. sched_switch runs in the context of the task switched out, so
# the process (tgid) of the task switched in is unknown there: its wait is kept by thread id and
# counted when that thread is next switched out, when ``pid`` (the tgid) says whose it is. Threads
# the targets start later are included, as no thread list is taken up front.
_TARGET_ACCOUNT = """
tracepoint:sched:sched_switch /@sched_pending[args->prev_pid]/ {
  $w = @sched_pending[args->prev_pid] - 1;
  delete(@sched_pending[args->prev_pid]);
  if (PID_MATCH) {
    @sched_target_n[SEC] = count();
    @sched_target_sum[SEC] = sum($w);
    @sched_target_max[SEC] = max($w);
  }
}
"""


def maps_of(tracers: Iterable[str]) -> list[str]:
    chosen = set(tracers)
    return [m for m, (tracer, _) in MAPS.items() if tracer in chosen]


def ephemeral_ports() -> tuple[int, int]:
    """The local port range clients get their ports from."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


MAX_TARGET_PIDS = 32


def program(tracers: Iterable[str], t0_ns: int, ephemeral: tuple[int, int] | None = None,
            pids: Iterable[int] = ()) -> str:
    """The whole bpftrace script for ``tracers`` with the run clock's origin ``t0_ns``; with
    ``pids`` (the targets' processes), ``sched_wait`` also measures their threads alone."""
    chosen = list(dict.fromkeys(tracers))
    targets = sorted(set(pids))[:MAX_TARGET_PIDS] if "sched_wait" in chosen else []
    lo, hi = ephemeral or ephemeral_ports()
    body = "".join(_PROGRAMS[t] for t in chosen)
    if targets:
        body = body.replace("TARGET_STORE", "@sched_pending[args->next_pid] = $us + 1;")
        body += _TARGET_ACCOUNT.replace("PID_MATCH", " || ".join(f"pid == {p}" for p in targets))
    body = body.replace("    TARGET_STORE\n", "").replace("SEC", _SEC.format(t0=t0_ns))
    body = body.replace("EPH_LO", str(lo)).replace("EPH_HI", str(hi))
    maps = [m for m in maps_of(chosen) if targets or not m.startswith("sched_target")]
    flush = "".join(f"  print(@{m}); clear(@{m});\n" for m in maps)
    drop = "  clear(@sched_q);\n" if "sched_wait" in chosen else ""
    drop += "  clear(@sched_pending);\n" if targets else ""
    return (
        "BEGIN { printf(\"chaoslab-ebpf-ready\\n\"); }\n"
        + body
        + "interval:s:1 {\n" + flush + "}\n"
        + "END {\n" + flush + drop + "}\n"
    )
