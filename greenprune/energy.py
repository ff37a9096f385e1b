"""Energy of a model's own work, metered with CodeCarbon, and its summary statistics.

Method (shared by the evaluation and pruning services):

* Each measurement window starts a fresh ``OfflineEmissionsTracker`` (no network, nothing written
  to disk) around the work only and reads the per-component energy it integrated (CPU, GPU, RAM).
  Its ``process`` tracking mode is the default: where CPU power is an estimate from CPU load, the
  load is this process's own CPU time (TDP x its share of the machine's threads), so other
  processes on a shared machine do not leak into the figure; hardware counters (RAPL, NVML)
  measure the whole package or device in either mode.
* An optional idle baseline (the tracker running while the process sleeps) gives the idle power of
  each component; ``net = gross - idle_watts x window_seconds``, per component. Net is not floored
  at zero (a negative net says the work was indistinguishable from idle) and is never above gross.
* How each component was measured is read from the tracker's hardware objects: ``nvml`` (NVIDIA
  energy counter or power readings), ``rapl`` (a hardware energy counter: Linux RAPL, Windows
  EMI, Intel Power Gadget, Apple powermetrics, Raspberry Pi PMIC), ``cpu-load-estimate`` (TDP
  scaled by CPU load), ``tdp-estimate`` (a fixed share of a known TDP) and
  ``constant-estimate`` (a fixed wattage: CodeCarbon's RAM model or a generic CPU TDP).
* The headline is the net energy of the compute device (GPU when the work runs on CUDA, else the
  CPU); RAM, a constant estimate, never enters it.
* Repeats are summarised by their median and a confidence interval (see :func:`interval`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

COMPONENTS = ("cpu", "gpu", "ram")
METHODS = ("nvml", "rapl", "tdp-estimate", "cpu-load-estimate", "constant-estimate")
ESTIMATED_METHODS = frozenset({"tdp-estimate", "cpu-load-estimate", "constant-estimate"})
JOULES_PER_KWH = 3.6e6
_SAMPLE_EVERY_SECONDS = 0.2
QUIET_TIMEOUT_SECONDS = 20.0


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    """A point estimate (the median) with a confidence interval around it.

    Attributes:
        median: Median of the values.
        low: Lower bound of the interval (never above ``median``).
        high: Upper bound of the interval (never below ``median``).
        n: How many values were summarised.
        method: How the bounds were computed: ``single-value``, ``order-statistic-median`` or
            ``student-t-mean`` (see :func:`interval`).
    """

    median: float
    low: float
    high: float
    n: int
    method: str


def interval(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval:
    """Summarise repeated measurements as their median and a confidence interval.

    The interval is the distribution-free confidence interval for the median built from order
    statistics, ``[x_(k), x_(n+1-k)]`` with the largest ``k`` whose binomial coverage
    ``1 - 2 P(Binomial(n, 1/2) <= k - 1)`` reaches ``confidence``. With few values no pair of
    order statistics reaches it (at 95%: fewer than 6 values, since ``[min, max]`` covers only
    ``1 - 2^(1-n)``); then the Student-t interval of the mean, ``mean +- t s / sqrt(n)``, is used,
    which for such small ``n`` is wide enough to always contain the median (``t / sqrt(n) > 1``
    and ``|mean - median| <= s``). The bounds are finally widened to include the median, so the
    interval contains it for any confidence. Both methods are deterministic; ``seed`` is accepted
    for interface stability and unused.

    Args:
        values: The measurements, at least one, all finite.
        confidence: Two-sided confidence level, strictly between 0 and 1.
        seed: Unused; the methods are deterministic.

    Returns:
        The median with the interval, the number of values and the method name.

    Raises:
        ValueError: If ``values`` is empty or not finite, or ``confidence`` is out of range.
    """
    del seed
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError("interval() needs at least one value")
    if not all(math.isfinite(v) for v in data):
        raise ValueError("interval() needs finite values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(data)
    median = statistics.median(data)
    if n == 1:
        return Interval(median, median, median, 1, "single-value")
    k = _order_statistic_rank(n, confidence)
    if k is not None:
        low, high, method = data[k - 1], data[n - k], "order-statistic-median"
    else:
        mean = statistics.fmean(data)
        half_width = student_t_quantile(0.5 + confidence / 2.0, n - 1) * (
            statistics.stdev(data) / math.sqrt(n)
        )
        low, high, method = mean - half_width, mean + half_width, "student-t-mean"
    return Interval(median, min(low, median), max(high, median), n, method)


def _order_statistic_rank(n: int, confidence: float) -> int | None:
    """Largest k with P(x_(k) <= median <= x_(n+1-k)) >= confidence, or None if none does."""
    best = None
    tail = 0.0  # P(Binomial(n, 1/2) <= k - 1)
    for k in range(1, (n + 1) // 2 + 1):
        tail += math.comb(n, k - 1) / 2.0**n
        if 1.0 - 2.0 * tail < confidence:
            break
        best = k
    return best


@functools.lru_cache(maxsize=256)
def student_t_quantile(probability: float, dof: int) -> float:
    """Quantile of Student's t distribution with an integer number of degrees of freedom.

    Uses the closed-form distribution function for integer ``dof`` (Abramowitz & Stegun 26.7.3
    and 26.7.4) and bisection, so no SciPy is needed.

    Args:
        probability: Lower-tail probability, strictly between 0 and 1.
        dof: Degrees of freedom, at least 1.

    Returns:
        ``t`` with ``P(T <= t) = probability``.
    """
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, dof)
    two_sided = 2.0 * probability - 1.0  # P(|T| <= t)
    low, high = 0.0, 1.0
    while _t_central_mass(high, dof) < two_sided:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if _t_central_mass(mid, dof) < two_sided:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def _t_central_mass(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with integer dof (A&S 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(dof))
    sin_t, cos2 = math.sin(theta), math.cos(theta) ** 2
    if dof % 2 == 0:
        term, total = 1.0, 1.0
        for j in range(2, dof, 2):  # terms (1*3*...*(j-1))/(2*4*...*j) cos^j
            term *= cos2 * (j - 1) / j
            total += term
        return sin_t * total
    if dof == 1:
        return 2.0 * theta / math.pi
    cos_t = math.cos(theta)
    term, total = cos_t, cos_t
    for j in range(3, dof - 1, 2):  # terms (2*4*...*(j-1))/(1*3*...*j) cos^j
        term *= cos2 * (j - 1) / j
        total += term
    return 2.0 / math.pi * (theta + sin_t * total)


# --------------------------------------------------------------------------- records


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


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy of one component over the repeats of a measurement.

    Attributes:
        component: ``cpu``, ``gpu`` or ``ram``.
        method: One of :data:`METHODS`.
        estimated: Whether ``method`` is an estimate rather than a hardware reading.
        gross_joules: Energy integrated over the window, per repeat summarised.
        net_joules: Gross minus idle power times the window's length.
        idle_watts: Idle power from the baseline (0 when none was measured).
    """

    component: str
    method: str
    estimated: bool
    gross_joules: Interval
    net_joules: Interval
    idle_watts: float


@dataclass(frozen=True)
class EnergyReport:
    """Everything recorded about the energy of one measured piece of work.

    Attributes:
        components: Per-component energy (cpu, ram, and gpu when present).
        headline_component: The compute device whose net energy is the headline (gpu or cpu).
        net_joules: Net energy of the headline component.
        gross_joules: Gross energy of the headline component.
        wall_seconds: Wall time of the metered work.
        tokens_per_second: Tokens processed per second of metered work.
        tokens: Tokens processed in one repeat.
        samples: Samples (documents) processed in one repeat.
        joules_per_token: Median headline net energy per token (0 when no tokens were counted).
        joules_per_sample: Median headline net energy per sample (0 when no samples).
        peak_rss_bytes: Peak resident memory of the process during the windows.
        peak_cuda_bytes: Peak CUDA memory allocated by torch during the windows (0 on CPU).
        device_name: The compute device (GPU name or CPU model).
        hardware: Description of the hardware and how each component was measured.
        gpu_shared: Whether another process used the GPU during a window.
        estimated: Whether the headline figure is an estimate rather than a hardware reading.
        repeats: Number of repeats.
        repeat_net_joules: Headline net energy of each repeat, in order.
    """

    components: list[ComponentEnergy]
    headline_component: str
    net_joules: Interval
    gross_joules: Interval
    wall_seconds: Interval
    tokens_per_second: Interval
    tokens: int
    samples: int
    joules_per_token: float
    joules_per_sample: float
    peak_rss_bytes: int
    peak_cuda_bytes: int
    device_name: str
    hardware: str
    gpu_shared: bool
    estimated: bool
    repeats: int
    repeat_net_joules: list[float]


@dataclass
class WindowReading:
    """What one metered window (or the sum of several) measured; filled when the window closes.

    Attributes:
        joules: Gross energy per component.
        metered_seconds: Length of the tracker's energy window (used for the idle subtraction).
        wall_seconds: Wall time of the work inside the window.
        peak_rss_bytes: Peak resident memory of the process seen during the window.
        peak_cuda_bytes: Peak CUDA memory allocated during the window (0 on CPU).
        gpu_shared: Whether another process held a compute context on the GPU.
    """

    joules: dict[str, float] = field(default_factory=dict)
    metered_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_cuda_bytes: int = 0
    gpu_shared: bool = False

    @classmethod
    def combine(cls, readings: Sequence[WindowReading]) -> WindowReading:
        """Sum energies and times of several windows; peaks and sharing are maxima."""
        total = cls()
        for reading in readings:
            for component, joules in reading.joules.items():
                total.joules[component] = total.joules.get(component, 0.0) + joules
            total.metered_seconds += reading.metered_seconds
            total.wall_seconds += reading.wall_seconds
            total.peak_rss_bytes = max(total.peak_rss_bytes, reading.peak_rss_bytes)
            total.peak_cuda_bytes = max(total.peak_cuda_bytes, reading.peak_cuda_bytes)
            total.gpu_shared = total.gpu_shared or reading.gpu_shared
        return total


# --------------------------------------------------------------------------- metering


class EnergyMeter:
    """Meters windows of work with CodeCarbon, optionally against an idle baseline.

    Usage::

        meter = EnergyMeter(device="cpu", workdir=path)
        meter.measure_idle(2.0)            # optional
        with meter.window() as reading:    # once per repeat (or several, then combine)
            do_work()
        report = summarize([reading], meter, tokens=..., samples=...)

    Args:
        device: The compute device the work runs on: ``cpu`` or ``cuda:N``.
        workdir: Existing directory CodeCarbon may use as its output folder (it writes nothing
            there with the settings used).
        measure_power_secs: CodeCarbon's energy sampling interval (it also samples power every
            second in a monitor thread).
        tracking_mode: CodeCarbon's ``process`` (CPU-load estimates from this process's CPU
            time) or ``machine`` (from the whole machine's load, TDP x (0.1 + 0.9 load^3)).
        country_iso_code: Country for CodeCarbon's offline carbon intensity (unused here).
    """

    def __init__(
        self,
        device: str = "cpu",
        workdir: Path | str = ".",
        *,
        measure_power_secs: float = 1.0,
        tracking_mode: str = "process",
        country_iso_code: str = "USA",
    ) -> None:
        if tracking_mode not in ("process", "machine"):
            raise ValueError(f"tracking_mode must be 'process' or 'machine', not {tracking_mode!r}")
        self.device = device
        self.tracking_mode = tracking_mode
        self.workdir = Path(workdir)
        self.measure_power_secs = measure_power_secs
        self.country_iso_code = country_iso_code
        self.idle_watts: dict[str, float] = {}
        self.components: list[ComponentInfo] = []
        self.quiet: QuietCheck | None = None
        self.system: dict[str, Any] = {}
        self._cuda_index = _cuda_index(device)
        self._nvml_index, self._nvml_note = _nvml_index(self._cuda_index)
        self._gpu_watch = _GpuProcessWatch(self._nvml_index, self._nvml_note)

    # ---------------------------------------------------------------- public API
    @property
    def headline_component(self) -> str:
        """``gpu`` when the work runs on CUDA and the GPU is metered, else ``cpu``."""
        names = {c.component for c in self.components}
        return "gpu" if self._cuda_index is not None and "gpu" in names else "cpu"

    def measure_idle(self, seconds: float) -> dict[str, float]:
        """Measure idle power per component while sleeping for ``seconds``.

        Args:
            seconds: How long to sleep with the tracker running; 0 clears the baseline.

        Returns:
            Idle watts per component (also kept in :attr:`idle_watts`).
        """
        if seconds <= 0:
            self.idle_watts = {}
            return {}
        with self.window() as reading:
            time.sleep(seconds)
        self.idle_watts = {
            name: joules / reading.metered_seconds for name, joules in reading.joules.items()
        }
        return dict(self.idle_watts)

    @contextmanager
    def window(self) -> Iterator[WindowReading]:
        """Meter the work done inside the ``with`` block; the reading fills in on exit."""
        reading = WindowReading()
        self.prepare()
        tracker = self._new_tracker()
        tracker.start()
        if getattr(tracker, "_start_time", None) is None:
            raise RuntimeError("CodeCarbon's tracker failed to start")
        # CodeCarbon's own periodic measurement can race with stop() and count an interval
        # twice (its scheduler does not wait for a running measurement), so the sampler
        # thread drives the periodic measurements and is joined before stop().
        tracker._scheduler.stop()
        sampler = _Sampler(
            self._gpu_watch, tracker._measure_power_and_energy, self.measure_power_secs
        )
        self._reset_cuda_peak()
        sampler.start()
        started = time.perf_counter()
        try:
            yield reading
        finally:
            reading.wall_seconds = time.perf_counter() - started
            sampler.stop()
            # stop() skips its closing measurement when the last one is under 50 ms old, which
            # drops all of a short window's energy: measure the tail here, always.
            tracker._measure_power_and_energy()
            tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            raise RuntimeError("CodeCarbon's tracker failed to stop cleanly")
        present = {c.component for c in self.components}
        reading.joules = {
            name: float(getattr(data, f"{name}_energy")) * JOULES_PER_KWH
            for name in COMPONENTS
            if name in present
        }
        reading.metered_seconds = float(data.duration)
        reading.peak_rss_bytes = sampler.peak_rss
        reading.peak_cuda_bytes = self._cuda_peak()
        reading.gpu_shared = sampler.gpu_shared

    def device_name(self) -> str:
        """Name of the compute device: the GPU's name on CUDA, else the CPU model."""
        if self._cuda_index is not None:
            import torch

            return str(torch.cuda.get_device_name(self._cuda_index))
        return str(self.system.get("cpu_model") or _cpu_model_from_proc() or "unknown CPU")

    def hardware(self) -> str:
        """One line on the hardware and how each component was measured."""
        parts = [
            f"{self.system.get('cpu_count', '?')} CPU threads",
            f"{self.system.get('ram_total_size', 0.0):.1f} GiB RAM",
        ]
        parts += [f"{c.component}: {c.method} ({c.description})" for c in self.components]
        parts.append(f"gpu sharing: {self._gpu_watch.note}")
        if self.quiet is not None:
            parts.append(f"other processes before measuring: {self.quiet.describe()}")
        return "; ".join(parts)

    def wait_for_quiet(self, timeout: float = QUIET_TIMEOUT_SECONDS) -> QuietCheck:
        """Waits for other processes to leave the CPUs alone (:func:`wait_for_quiet_machine`).

        The outcome is kept and named in :meth:`hardware`.
        """
        self.quiet = wait_for_quiet_machine(timeout)
        return self.quiet

    # ---------------------------------------------------------------- internals
    def _new_tracker(self) -> Any:
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        from codecarbon import OfflineEmissionsTracker

        kwargs: dict[str, Any] = {}
        if self._nvml_index is not None:
            kwargs["gpu_ids"] = [self._nvml_index]
        return OfflineEmissionsTracker(
            country_iso_code=self.country_iso_code,
            measure_power_secs=self.measure_power_secs,
            output_dir=str(self.workdir),
            output_methods=[],
            emissions_endpoint="",
            log_level="error",
            tracking_mode=self.tracking_mode,
            allow_multiple_runs=True,
            pue=1.0,
            **kwargs,
        )

    def prepare(self) -> None:
        """Run CodeCarbon's hardware detection once and learn how each component is measured.

        The first tracker of a process integrates its detection time (seconds) into its first
        measurement, so a throwaway tracker takes that hit. Called by the first window; call it
        earlier to keep the detection out of the job's timing.
        """
        if self.components:
            return
        tracker = self._new_tracker()
        tracker.start()
        if getattr(tracker, "_start_time", None) is None:
            raise RuntimeError("CodeCarbon's tracker failed to start")
        tracker.stop()
        self._inspect(tracker)

    def _inspect(self, tracker: Any) -> None:
        self.components = components_of(tracker)
        self.system = {
            key: tracker._conf.get(key)
            for key in ("cpu_model", "cpu_count", "gpu_model", "gpu_count", "ram_total_size")
        }

    def _reset_cuda_peak(self) -> None:
        if self._cuda_index is not None:
            import torch

            torch.cuda.reset_peak_memory_stats(self._cuda_index)

    def _cuda_peak(self) -> int:
        if self._cuda_index is None:
            return 0
        import torch

        return int(torch.cuda.max_memory_allocated(self._cuda_index))


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


def prime(device: str = "cpu") -> None:
    """Runs CodeCarbon's one-off hardware detection in this process.

    The detection takes seconds once per process; afterwards every meter prepares in
    milliseconds. A warm job process calls this before its job arrives.

    Args:
        device: The device the process will meter (``cpu`` or ``cuda:N``).
    """
    with tempfile.TemporaryDirectory(prefix="greenprune-prime-") as workdir:
        EnergyMeter(device, workdir).prepare()


def components_of(tracker: Any) -> list[ComponentInfo]:
    """Read how a started CodeCarbon tracker measures each component.

    CodeCarbon picks its backends in ``core/resource_tracker.py`` and keeps one hardware object
    per backend in ``tracker._hardware``: ``RAM`` (a constant from the memory size, or the user's
    forced wattage), ``CPU`` with ``_mode`` ``intel_rapl``/``windows_emi``/
    ``intel_power_gadget`` (counters), ``cpu_load`` (TDP x CPU load) or ``constant``
    (TDP / 2, generic 85 W when the model is unknown), ``GPU`` (NVML energy counter, power
    readings as fallback), ``AppleSiliconChip`` and ``Raspberry`` (power readings).

    Args:
        tracker: A started ``OfflineEmissionsTracker``.

    Returns:
        One entry per component, in ``cpu``, ``gpu``, ``ram`` order.
    """
    found: dict[str, ComponentInfo] = {}
    for hw in tracker._hardware:
        kind = type(hw).__name__
        if kind == "CPU":
            found["cpu"] = _cpu_info(hw)
        elif kind == "GPU":
            names = ", ".join(d.get("name", "?") for d in hw.devices.get_gpu_static_info())
            found["gpu"] = ComponentInfo("gpu", "nvml", False, names or "GPU")
        elif kind == "RAM":
            watts = hw.total_power().W
            found["ram"] = ComponentInfo("ram", "constant-estimate", True, f"{watts:.1f} W")
        elif kind in ("AppleSiliconChip", "Raspberry"):
            part = "gpu" if hw.chip_part == "GPU" else hw.chip_part.lower()
            found[part] = ComponentInfo(part, "rapl", False, f"{kind} {hw._model}")
    return [found[name] for name in COMPONENTS if name in found]


def _cpu_info(hw: Any) -> ComponentInfo:
    mode, model, tdp = hw._mode, hw._model, hw._tdp
    if mode in ("intel_rapl", "windows_emi", "intel_power_gadget"):
        return ComponentInfo("cpu", "rapl", False, f"{model}, {mode}")
    if mode == "cpu_load":
        load = "process CPU share" if hw._tracking_mode == "process" else "machine load"
        return ComponentInfo("cpu", "cpu-load-estimate", True, f"{model}, TDP {tdp} W x {load}")
    generic = bool(getattr(hw, "_is_generic_tdp", False))
    method = "constant-estimate" if generic else "tdp-estimate"
    return ComponentInfo("cpu", method, True, f"{model}, TDP {tdp} W{' (generic)' * generic}")


def summarize(
    readings: Sequence[WindowReading],
    meter: EnergyMeter,
    *,
    tokens: int,
    samples: int,
    confidence: float = 0.95,
    seed: int = 0,
) -> EnergyReport:
    """Summarise the repeats of a measurement into an :class:`EnergyReport`.

    Args:
        readings: One (combined) reading per repeat, at least one.
        meter: The meter that took them (idle baseline, methods, hardware).
        tokens: Tokens processed in one repeat.
        samples: Samples (documents) processed in one repeat.
        confidence: Confidence level of the intervals.
        seed: Passed to :func:`interval`.

    Returns:
        The report; the headline is the compute device's net energy.
    """
    if not readings:
        raise ValueError("summarize() needs at least one reading")
    components: list[ComponentEnergy] = []
    nets: dict[str, list[float]] = {}
    grosses: dict[str, list[float]] = {}
    for info in meter.components:
        idle = meter.idle_watts.get(info.component, 0.0)
        gross = [r.joules.get(info.component, 0.0) for r in readings]
        net = [min(g, g - idle * r.metered_seconds) for g, r in zip(gross, readings, strict=True)]
        grosses[info.component], nets[info.component] = gross, net
        components.append(
            ComponentEnergy(
                component=info.component,
                method=info.method,
                estimated=info.estimated,
                gross_joules=interval(gross, confidence, seed),
                net_joules=interval(net, confidence, seed),
                idle_watts=idle,
            )
        )
    headline = meter.headline_component
    headline_info = next(c for c in components if c.component == headline)
    net_interval = headline_info.net_joules
    rates = [tokens / r.wall_seconds if r.wall_seconds > 0 else 0.0 for r in readings]
    return EnergyReport(
        components=components,
        headline_component=headline,
        net_joules=net_interval,
        gross_joules=headline_info.gross_joules,
        wall_seconds=interval([r.wall_seconds for r in readings], confidence, seed),
        tokens_per_second=interval(rates, confidence, seed),
        tokens=tokens,
        samples=samples,
        joules_per_token=net_interval.median / tokens if tokens > 0 else 0.0,
        joules_per_sample=net_interval.median / samples if samples > 0 else 0.0,
        peak_rss_bytes=max(r.peak_rss_bytes for r in readings),
        peak_cuda_bytes=max(r.peak_cuda_bytes for r in readings),
        device_name=meter.device_name(),
        hardware=meter.hardware(),
        gpu_shared=any(r.gpu_shared for r in readings),
        estimated=headline_info.estimated,
        repeats=len(readings),
        repeat_net_joules=list(nets[headline]),
    )


# --------------------------------------------------------------------------- helpers


class _Sampler:
    """Background thread: CodeCarbon's periodic measurement, peak RSS, other GPU processes."""

    def __init__(
        self, gpu_watch: _GpuProcessWatch, measure: Callable[[], None], every: float
    ) -> None:
        self._process = psutil.Process()
        self._gpu_watch = gpu_watch
        self._measure = measure
        self._every = every
        self._last_measure = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="energy-sampler", daemon=True)
        self.peak_rss = 0
        self.gpu_shared = False

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_EVERY_SECONDS):
            self._sample()
            if time.perf_counter() - self._last_measure >= self._every:
                self._measure()
                self._last_measure = time.perf_counter()

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
        self.gpu_shared = self.gpu_shared or self._gpu_watch.others_present()


class _GpuProcessWatch:
    """Whether another process holds a compute context on the metered GPU (via NVML)."""

    def __init__(self, nvml_index: int | None, note: str) -> None:
        self._handle = None
        self.note = note
        if nvml_index is None:
            return
        try:
            import pynvml

            self._pynvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index)
            pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
            self.note = "checked with NVML's process list"
        except Exception as error:  # any NVML failure: cannot check
            self._handle = None
            self.note = f"not checked (NVML process list unavailable: {error})"

    def others_present(self) -> bool:
        if self._handle is None:
            return False
        try:
            pids = [p.pid for p in self._pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle)]
        except Exception:  # a failed poll is no evidence
            return False
        own = os.getpid()
        if own in pids:
            return any(pid != own for pid in pids)
        # In a container NVML reports host PIDs: our own context is then one unnamed entry.
        return len(pids) > 1


def _cuda_index(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    _, _, index = device.partition(":")
    return int(index) if index else 0


def _nvml_index(cuda_index: int | None) -> tuple[int | None, str]:
    """NVML index of a CUDA device (CUDA and NVML may order devices differently)."""
    if cuda_index is None:
        return None, "not applicable (work runs on the CPU)"
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            nvml_uuid = pynvml.nvmlDeviceGetUUID(handle)
            nvml_uuid = nvml_uuid.decode() if isinstance(nvml_uuid, bytes) else nvml_uuid
            if nvml_uuid.removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                return index, ""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        entries = [v.strip() for v in visible.split(",") if v.strip()]
        if cuda_index < len(entries) and entries[cuda_index].isdigit():
            return int(entries[cuda_index]), ""
        return cuda_index, ""
    except Exception as error:  # no NVML: nothing to watch
        return None, f"not checked (pynvml unavailable: {error})"


def _cpu_model_from_proc() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
