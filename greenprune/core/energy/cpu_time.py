"""The CPU time of the work, what else ran on the machine meanwhile, and how many threads measure.

Where no power counter can be read, a window's measured quantity is the CPU time of the process
doing the work: all its threads, user plus system (``time.process_time``, exact to the
nanosecond on Linux), less the meter's own sampling thread. Wall time is not used for energy:
it is what other tenants of a shared machine move.

CPU time alone is not robust either: torch's worker threads spin while they wait for a thread
that another process holds off its core, and the spinning counts as CPU time. So the work runs
with fewer torch threads than the CPUs (:func:`measurement_threads`), each window records the CPU
time other processes used meanwhile (system-wide busy time from ``/proc/stat`` minus this
process's own) and the steal time of a virtual machine, and :func:`disturbance` says when other
processes used more CPU than the cores left to them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DISTURBANCE_MARGIN_CORES = 0.25
"""Other processes may use this many cores beyond the ones left free before a window counts
as disturbed (``/proc/stat`` counts in ticks; background daemons use a little)."""

_PROC_STAT = Path("/proc/stat")
_CPUINFO = Path("/proc/cpuinfo")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def measurement_threads(device: str, requested: int = 0) -> int:
    """The torch threads a metered window runs with.

    Args:
        device: ``cpu`` or ``cuda:N``.
        requested: A count asked for; 0 chooses.

    Returns:
        ``requested`` when set; 0 on CUDA (torch's own choice, the GPU does the work); else half
        the usable CPUs, at least one, so that a neighbour on a shared machine finds a free core
        instead of preempting a measuring thread (whose partners would then spin).
    """
    if requested > 0:
        return requested
    if device.startswith("cuda"):
        return 0
    return max(1, usable_cpus() // 2)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Runs the block with ``count`` torch intra-op threads (0, or torch not imported: as is)."""
    torch = sys.modules.get("torch")
    if count <= 0 or torch is None:
        yield
        return
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if previous != count:
            torch.set_num_threads(previous)


@dataclass(frozen=True)
class CpuUsage:
    """What the CPUs did during one window.

    Attributes:
        wall_seconds: The window's wall time.
        cpu_seconds: CPU time of this process (all threads, user plus system, and children it
            waited for), less the threads named as the meter's own.
        other_cpu_seconds: CPU time other processes used on the machine (never below 0).
        steal_seconds: Time the hypervisor ran other machines instead of this one's CPUs.
        cpu_mhz: Mean CPU frequency over the start and end readings, 0 where unreadable.
    """

    wall_seconds: float
    cpu_seconds: float
    other_cpu_seconds: float
    steal_seconds: float
    cpu_mhz: float

    @property
    def other_cores(self) -> float:
        """Cores other processes kept busy on average."""
        return self.other_cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class _Reading:
    wall: float
    own: float
    excluded: float
    machine_busy: float | None
    steal: float | None
    mhz: float


class CpuClock:
    """Reads this process's CPU time and the machine's at the start and end of a window.

    Args:
        excluded: Threads whose CPU time is not the work's (the meter's sampler); each must stay
            alive until :meth:`stop`.
    """

    def __init__(self, excluded: tuple[threading.Thread, ...] = ()) -> None:
        self._excluded = excluded
        self._start = self._read()

    def stop(self) -> CpuUsage:
        """The usage since the clock was made."""
        end = self._read(ending=True)
        start = self._start
        own = max(0.0, end.own - start.own)
        work = max(0.0, own - max(0.0, end.excluded - start.excluded))
        other = 0.0
        if start.machine_busy is not None and end.machine_busy is not None:
            other = max(0.0, (end.machine_busy - start.machine_busy) - own)
        steal = 0.0
        if start.steal is not None and end.steal is not None:
            steal = max(0.0, end.steal - start.steal)
        mhz = [m for m in (start.mhz, end.mhz) if m > 0]
        return CpuUsage(
            wall_seconds=end.wall - start.wall,
            cpu_seconds=work,
            other_cpu_seconds=other,
            steal_seconds=steal,
            cpu_mhz=sum(mhz) / len(mhz) if mhz else 0.0,
        )

    def _read(self, ending: bool = False) -> _Reading:
        # The clock's own reads stay outside the window: the process's times are read last at
        # the start and first at the end.
        if ending:
            wall, own, excluded = self._own()
            busy, steal = machine_cpu_seconds()
            mhz = cpu_mhz()
        else:
            mhz = cpu_mhz()
            busy, steal = machine_cpu_seconds()
            wall, own, excluded = self._own()
        return _Reading(wall, own, excluded, busy, steal, mhz)

    def _own(self) -> tuple[float, float, float]:
        times = os.times()
        excluded = sum(_thread_cpu_seconds(t) for t in self._excluded)
        own = time.process_time() + times.children_user + times.children_system
        return time.perf_counter(), own, excluded


def _thread_cpu_seconds(thread: threading.Thread) -> float:
    """CPU time of a live thread (its POSIX CPU clock); 0 where unavailable."""
    if thread.ident is None or not thread.is_alive():
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError):
        return 0.0


def machine_cpu_seconds() -> tuple[float | None, float | None]:
    """The machine's busy CPU seconds since boot (all CPUs) and its steal seconds.

    Busy is user + nice + system + irq + softirq of ``/proc/stat``'s ``cpu`` line (guest time
    is inside user); None where the file cannot be read (not Linux).
    """
    try:
        with _PROC_STAT.open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None, None
    if not fields or fields[0] != "cpu":
        return None, None
    ticks = [int(value) for value in fields[1:]]
    hertz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    user, nice, system = ticks[0], ticks[1], ticks[2]
    irq = ticks[5] if len(ticks) > 5 else 0
    softirq = ticks[6] if len(ticks) > 6 else 0
    steal = ticks[7] if len(ticks) > 7 else 0
    return (user + nice + system + irq + softirq) / hertz, steal / hertz


def cpu_mhz() -> float:
    """The mean current CPU frequency in MHz (``/proc/cpuinfo``), 0 where unreadable."""
    try:
        lines = _CPUINFO.read_text().splitlines()
    except OSError:
        return 0.0
    values = []
    for line in lines:
        if line.startswith("cpu MHz"):
            try:
                values.append(float(line.split(":", 1)[1]))
            except ValueError:
                continue
    return sum(values) / len(values) if values else 0.0


def disturbance(
    usage: CpuUsage, threads: int, cpus: int, *, gpu_shared: bool = False
) -> str | None:
    """Why a window counts as disturbed, or None when it does not.

    A window is disturbed when other processes kept more cores busy than the ones the
    measuring threads left free (plus :data:`DISTURBANCE_MARGIN_CORES`): some of them then
    shared a core with the work. On a GPU, when another process used the GPU.

    Args:
        usage: The window's CPU usage.
        threads: The measuring threads (0: torch's choice, counted as all CPUs).
        cpus: The usable CPUs.
        gpu_shared: Whether another process held a context on the metered GPU.
    """
    if gpu_shared:
        return "another process used the GPU"
    threshold = disturbance_threshold(threads, cpus)
    if usage.other_cores > threshold:
        return f"other processes used {usage.other_cores:.2f} cores (threshold {threshold:.2f})"
    return None


def disturbance_threshold(threads: int, cpus: int) -> float:
    """The other processes' cores above which a window is disturbed (see :func:`disturbance`)."""
    return max(0, cpus - (threads if threads > 0 else cpus)) + DISTURBANCE_MARGIN_CORES


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> str:
    """Has glibc's allocator keep freed memory instead of returning it to the kernel.

    torch's CPU allocator frees a forward's activations and takes them again on the next one;
    by default glibc gives large blocks back (mmap and trim thresholds that adapt) and the next
    forward faults the pages in again, zeroed: kernel time that came to 6-9 % of a forward's
    CPU time on the demo's checkpoints, and rose and fell with the neighbours' memory traffic.
    Raising both thresholds to 1 GiB (``mallopt``) keeps the pages, as a steady server does.

    Returns:
        What was done, for the record; empty where there is no glibc (nothing is changed).
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return ""
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return ""
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES):
        return "glibc keeps freed memory (mmap and trim thresholds 1 GiB)"
    return ""
