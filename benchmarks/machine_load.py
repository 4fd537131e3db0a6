"""How busy the machine is apart from the benchmark itself (Linux /proc/stat; None elsewhere).

A training-speed number is only meaningful if no other process competed for the cores. The
driver waits for a quiet machine before each run and records how many cores other processes used
while it ran: all busy CPU time on the machine minus the benchmark child's own CPU time.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")


def busy_cpu_seconds() -> float | None:
    """Seconds of CPU time all cores have spent busy since boot (None when /proc/stat is absent)."""
    try:
        first = PROC_STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # Fields after "cpu": user nice system idle iowait irq softirq steal guest guest_nice, in ticks.
    ticks = [int(v) for v in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    busy = sum(ticks[:8]) - idle  # guest time is already counted inside user/nice
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of all finished child processes of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def busy_cores_now(sample_seconds: float = 1.0) -> float | None:
    """Mean number of busy cores over a short sample (includes this process, which is idle then)."""
    before = busy_cpu_seconds()
    time.sleep(sample_seconds)
    after = busy_cpu_seconds()
    if before is None or after is None:
        return None
    return (after - before) / sample_seconds


def wait_until_quiet(max_busy_cores: float, max_wait_s: float, sample_seconds: float = 2.0) -> tuple[float | None, float]:
    """Sample until fewer than `max_busy_cores` are busy or `max_wait_s` passes.

    Returns (last busy-cores sample, seconds waited); the caller runs anyway after the wait and
    records the sample, so a busy machine shows in the results instead of hanging the benchmark.
    """
    start = time.perf_counter()
    while True:
        busy = busy_cores_now(sample_seconds)
        waited = time.perf_counter() - start
        if busy is None or busy < max_busy_cores or waited >= max_wait_s:
            return busy, waited


class OtherLoadMeter:
    """Cores used by everything except our child processes between start() and stop()."""

    def start(self) -> None:
        self._busy0 = busy_cpu_seconds()
        self._children0 = children_cpu_seconds()
        self._wall0 = time.perf_counter()

    def stop(self) -> float | None:
        """Mean busy cores of other processes over the interval (None when /proc/stat is absent)."""
        busy1 = busy_cpu_seconds()
        wall = time.perf_counter() - self._wall0
        if self._busy0 is None or busy1 is None or wall <= 0:
            return None
        ours = children_cpu_seconds() - self._children0
        return max(0.0, (busy1 - self._busy0 - ours) / wall)
