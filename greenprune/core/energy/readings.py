"""What a measurement reports: the components metered, one window's reading, and the summary.

The summary is the contract's :class:`~greenprune.api.common.v1.energy_pb2.EnergyReport`: the
record that travels in job results and is stored, with no dataclass twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from greenprune.api.common.v1.energy_pb2 import ComponentEnergy, EnergyReport
from greenprune.core.stats import interval

CPU_TIME = "cpu-time"
"""The component whose energy is the process's CPU time x the per-CPU power of the TDP model."""

CPU_TIME_METHOD = "cpu-time-estimate"
"""How the ``cpu-time`` component is measured: an estimate derived from CPU seconds."""

COMPONENTS = ("cpu", "gpu", "ram", CPU_TIME)
METHODS = (
    "nvml",
    "rapl",
    CPU_TIME_METHOD,
    "tdp-estimate",
    "cpu-load-estimate",
    "constant-estimate",
)
COUNTER_METHODS = frozenset({"nvml", "rapl"})
"""Methods that read a hardware energy counter (or power sensor) rather than a model."""
ESTIMATED_METHODS = frozenset(set(METHODS) - COUNTER_METHODS)


METHOD_NOTES = {
    CPU_TIME_METHOD: "estimates, the process's CPU seconds x the per-CPU power of the TDP model "
    "(no power counter could be read)",
    "nvml": "readings of the GPU's energy counter (NVML)",
    "rapl": "readings of the CPU package's energy counter (RAPL)",
}
"""What a figure measured with each headline method is, in words."""


def describe_method(methods: Sequence[object]) -> str:
    """One sentence on how energy figures were measured, e.g. for a table's caption.

    Args:
        methods: The energy method of each figure shown (empty or missing ones are skipped).
    """
    known = sorted({str(m) for m in methods if isinstance(m, str) and m})
    if not known:
        return "Energy: how it was measured is not recorded."
    parts = [f"{METHOD_NOTES.get(m, _fallback(m))} ({m})" for m in known]
    return "Energy figures are " + "; ".join(parts) + "."


def _fallback(method: str) -> str:
    return "estimates" if method in ESTIMATED_METHODS else "readings"


@dataclass(frozen=True)
class ComponentInfo:
    """How CodeCarbon measures one hardware component.

    Attributes:
        component: ``cpu``, ``gpu`` or ``ram``.
        method: One of :data:`METHODS`.
        estimated: Whether the figure is a model rather than a reading of the hardware.
        description: Human-readable details (model, TDP, wattage).
    """

    component: str
    method: str
    estimated: bool
    description: str


@dataclass
class WindowReading:
    """What one metered window (or the sum of several) measured; filled when the window closes.

    Attributes:
        joules: Gross energy per component (``cpu-time``: CPU seconds x watts per CPU).
        metered_seconds: Length of the energy window (used for the idle subtraction).
        wall_seconds: Wall time of the work inside the window.
        cpu_seconds: CPU time of the process doing the work (all threads, user + system).
        other_cpu_seconds: CPU time other processes used meanwhile.
        steal_seconds: Steal time of the virtual machine meanwhile.
        cpu_mhz: Mean CPU frequency, 0 where unreadable.
        threads: Torch threads of the work (0: left to torch).
        windows: Windows summed into this reading.
        disturbed_windows: Of those, the ones :func:`~.cpu_time.disturbance` flagged.
        disturbance: Why the (last disturbed) window was disturbed; empty when none was.
        peak_rss_bytes: Peak resident memory of the process seen during the window.
        peak_cuda_bytes: Peak CUDA memory allocated during the window (0 on CPU).
        gpu_shared: Whether another process held a compute context on the GPU.
    """

    joules: dict[str, float] = field(default_factory=dict)
    metered_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    other_cpu_seconds: float = 0.0
    steal_seconds: float = 0.0
    cpu_mhz: float = 0.0
    threads: int = 0
    windows: int = 0
    disturbed_windows: int = 0
    disturbance: str = ""
    peak_rss_bytes: int = 0
    peak_cuda_bytes: int = 0
    gpu_shared: bool = False

    @classmethod
    def combine(cls, readings: Sequence[WindowReading]) -> WindowReading:
        """Sum energies, times and counts of several windows; peaks and sharing are maxima."""
        total = cls()
        mhz_weight = 0.0
        for reading in readings:
            for component, joules in reading.joules.items():
                total.joules[component] = total.joules.get(component, 0.0) + joules
            total.metered_seconds += reading.metered_seconds
            total.wall_seconds += reading.wall_seconds
            total.cpu_seconds += reading.cpu_seconds
            total.other_cpu_seconds += reading.other_cpu_seconds
            total.steal_seconds += reading.steal_seconds
            if reading.cpu_mhz > 0:
                total.cpu_mhz += reading.cpu_mhz * reading.wall_seconds
                mhz_weight += reading.wall_seconds
            total.threads = max(total.threads, reading.threads)
            total.windows += reading.windows
            total.disturbed_windows += reading.disturbed_windows
            total.disturbance = reading.disturbance or total.disturbance
            total.peak_rss_bytes = max(total.peak_rss_bytes, reading.peak_rss_bytes)
            total.peak_cuda_bytes = max(total.peak_cuda_bytes, reading.peak_cuda_bytes)
            total.gpu_shared = total.gpu_shared or reading.gpu_shared
        total.cpu_mhz = total.cpu_mhz / mhz_weight if mhz_weight > 0 else 0.0
        return total

    @property
    def other_cores(self) -> float:
        """Cores other processes kept busy on average during the window."""
        return self.other_cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def net_joules(self, component: str, idle_watts: dict[str, float]) -> float:
        """Gross energy of ``component`` minus its idle power over the window, never above gross."""
        gross = self.joules.get(component, 0.0)
        return min(gross, gross - idle_watts.get(component, 0.0) * self.metered_seconds)


class Metered(Protocol):
    """What :func:`summarize` needs from the meter that took the readings."""

    components: list[ComponentInfo]
    idle_watts: dict[str, float]
    watts_per_cpu: float

    @property
    def headline_component(self) -> str: ...  # noqa: D102

    def device_name(self) -> str: ...  # noqa: D102

    def hardware(self) -> str: ...  # noqa: D102


def summarize(
    readings: Sequence[WindowReading], meter: Metered, *, tokens: int, samples: int
) -> EnergyReport:
    """Summarise the repeats of a measurement into an ``EnergyReport``.

    Args:
        readings: One (combined) reading per repeat, at least one.
        meter: The meter that took them (idle baseline, methods, hardware).
        tokens: Tokens processed in one repeat.
        samples: Samples (documents) processed in one repeat.

    Returns:
        The report; the headline is the compute device's net energy.
    """
    if not readings:
        raise ValueError("summarize() needs at least one reading")
    report = EnergyReport(headline_component=meter.headline_component)
    nets: dict[str, list[float]] = {}
    for info in meter.components:
        gross = [r.joules.get(info.component, 0.0) for r in readings]
        nets[info.component] = [r.net_joules(info.component, meter.idle_watts) for r in readings]
        report.components.append(
            ComponentEnergy(
                component=info.component,
                method=info.method,
                estimated=info.estimated,
                gross_joules=interval(gross),
                net_joules=interval(nets[info.component]),
                idle_watts=meter.idle_watts.get(info.component, 0.0),
            )
        )
    headline = next(c for c in report.components if c.component == report.headline_component)
    report.net_joules.CopyFrom(headline.net_joules)
    report.gross_joules.CopyFrom(headline.gross_joules)
    report.wall_seconds.CopyFrom(interval([r.wall_seconds for r in readings]))
    rates = [tokens / r.wall_seconds if r.wall_seconds > 0 else 0.0 for r in readings]
    report.tokens_per_second.CopyFrom(interval(rates))
    report.tokens, report.samples = tokens, samples
    report.joules_per_token = headline.net_joules.median / tokens if tokens > 0 else 0.0
    report.joules_per_sample = headline.net_joules.median / samples if samples > 0 else 0.0
    report.peak_rss_bytes = max(r.peak_rss_bytes for r in readings)
    report.peak_cuda_bytes = max(r.peak_cuda_bytes for r in readings)
    report.device_name = meter.device_name()
    report.hardware = meter.hardware()
    report.gpu_shared = any(r.gpu_shared for r in readings)
    report.estimated = headline.estimated
    report.repeats = len(readings)
    report.repeat_net_joules.extend(nets[report.headline_component])
    report.energy_method = headline.method
    report.cpu_seconds.CopyFrom(interval([r.cpu_seconds for r in readings]))
    report.other_cpu_seconds.CopyFrom(interval([r.other_cpu_seconds for r in readings]))
    report.threads = max(r.threads for r in readings)
    report.watts_per_cpu = meter.watts_per_cpu
    report.windows = sum(r.windows for r in readings)
    report.disturbed_windows = sum(r.disturbed_windows for r in readings)
    return report
