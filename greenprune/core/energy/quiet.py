"""Waiting for other processes to leave the CPUs alone before measuring."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

QUIET_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class QuietCheck:
    """How busy other processes kept the CPUs just before a measurement.

    Attributes:
        quiet: Whether they went quiet before the timeout.
        other_cores: CPU cores other processes used over the last sample.
        waited_seconds: How long the wait took.
    """

    quiet: bool
    other_cores: float
    waited_seconds: float

    def describe(self) -> str:
        """One phrase for the record, e.g. ``quiet (0.02 cores, after 1.0 s)``."""
        state = "quiet" if self.quiet else "still busy"
        return f"{state} ({self.other_cores:.2f} cores, after {self.waited_seconds:.1f} s)"


def wait_for_quiet_machine(
    timeout: float = QUIET_TIMEOUT_SECONDS,
    *,
    max_other_cores: float = 0.25,
    sample_seconds: float = 0.1,
    quiet_samples: int = 3,
) -> QuietCheck:
    """Waits until other processes use at most ``max_other_cores`` CPU cores, or ``timeout``.

    Other processes' use is the machine's busy CPU time minus this process's own (with its
    children) over each sample. An idle baseline or a window taken while, say, another
    service's process imports torch would count that work as this job's or as idle power
    (with package counters or machine-wide load), so the eval job measures only once the
    machine is quiet, and records whether it was.

    Args:
        timeout: The most seconds to wait; then the check says the machine is still busy.
        max_other_cores: The load of other processes that still counts as quiet.
        sample_seconds: Length of one sample.
        quiet_samples: Consecutive quiet samples needed.
    """
    own = psutil.Process()

    def busy() -> tuple[float, float]:
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        times = own.cpu_times()
        mine = times.user + times.system + times.children_user + times.children_system
        return sum(machine) - idle, mine

    started = time.monotonic()
    streak, others = 0, 0.0
    last_busy, last_mine, last_time = *busy(), time.monotonic()
    while True:
        time.sleep(sample_seconds)
        now_busy, now_mine, now = *busy(), time.monotonic()
        others = max(0.0, (now_busy - last_busy) - (now_mine - last_mine)) / (now - last_time)
        last_busy, last_mine, last_time = now_busy, now_mine, now
        streak = streak + 1 if others <= max_other_cores else 0
        waited = now - started
        if streak >= quiet_samples:
            return QuietCheck(True, others, waited)
        if waited >= timeout:
            return QuietCheck(False, others, waited)
