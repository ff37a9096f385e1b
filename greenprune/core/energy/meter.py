"""Metering windows of work: the process's CPU time, and CodeCarbon's readings beside it."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from greenprune.core.energy.cpu_time import (
    CpuClock,
    CpuUsage,
    disturbance,
    measurement_threads,
    torch_threads,
    usable_cpus,
)
from greenprune.core.energy.nvml import GpuProcessWatch, cuda_index, nvml_index
from greenprune.core.energy.quiet import QUIET_TIMEOUT_SECONDS, QuietCheck, wait_for_quiet_machine
from greenprune.core.energy.readings import (
    COMPONENTS,
    COUNTER_METHODS,
    CPU_TIME,
    CPU_TIME_METHOD,
    ComponentInfo,
    WindowReading,
)

JOULES_PER_KWH = 3.6e6
_SAMPLE_EVERY_SECONDS = 0.2
_GENERIC_WATTS_PER_CPU = 4.0
"""CodeCarbon's per-thread power for a CPU it cannot place, when no TDP can be read at all."""


class EnergyMeter:
    """Meters windows of work, optionally against an idle baseline.

    Every window measures the CPU time of the process doing the work (all threads, user +
    system, less the meter's sampling thread) with the torch threads of
    :func:`~.cpu_time.measurement_threads`, and the CPU time other processes used meanwhile.
    Its ``cpu-time`` component is that CPU time times the per-CPU power of CodeCarbon's TDP
    model (:attr:`watts_per_cpu`), an estimate. Where CodeCarbon reads a power counter (RAPL,
    NVML) its reading is the headline and CPU time stays beside it as a check; elsewhere the
    ``cpu-time`` estimate is the headline.

    Why not CodeCarbon's own CPU figure without counters: in ``process`` tracking mode it is
    ``TDP x (process CPU seconds / wall seconds) / CPUs`` integrated over the wall time, that is
    ``TDP / CPUs x process CPU seconds`` (the same quantity, sampled once a second); it read a
    constant 7.9 W x wall time because torch's two threads kept both cores busy, spinning
    while waiting, whatever the work. It is kept as the secondary ``cpu`` component when
    ``secondary`` is on.

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
        measure_power_secs: CodeCarbon's energy sampling interval.
        tracking_mode: CodeCarbon's ``process`` (CPU-load estimates from this process's CPU
            time) or ``machine`` (from the whole machine's load, TDP x (0.1 + 0.9 load^3)).
        country_iso_code: Country for CodeCarbon's offline carbon intensity (unused here).
        threads: Torch threads during the windows; 0 chooses (:func:`measurement_threads`).
        secondary: Whether CodeCarbon also runs where it reads no counter, for its estimates
            as secondary components (``cpu`` load estimate, ``ram``). Off, windows without
            counters run no meter thread at all.
    """

    def __init__(
        self,
        device: str = "cpu",
        workdir: Path | str = ".",
        *,
        measure_power_secs: float = 1.0,
        tracking_mode: str = "process",
        country_iso_code: str = "USA",
        threads: int = 0,
        secondary: bool = True,
    ) -> None:
        if tracking_mode not in ("process", "machine"):
            raise ValueError(f"tracking_mode must be 'process' or 'machine', not {tracking_mode!r}")
        self.device = device
        self.tracking_mode = tracking_mode
        self.workdir = Path(workdir)
        self.measure_power_secs = measure_power_secs
        self.country_iso_code = country_iso_code
        self.threads = measurement_threads(device, threads)
        self.cpus = usable_cpus()
        self.secondary = secondary
        self.idle_watts: dict[str, float] = {}
        self.components: list[ComponentInfo] = []
        self.watts_per_cpu = 0.0
        self.quiet: QuietCheck | None = None
        self._quiet_note = ""
        self.system: dict[str, Any] = {}
        self._codecarbon = True
        self._cuda_index = cuda_index(device)
        self._nvml_index, self._nvml_note = nvml_index(self._cuda_index)
        self._gpu_watch = GpuProcessWatch(self._nvml_index, self._nvml_note)

    # ---------------------------------------------------------------- public API
    @property
    def headline_component(self) -> str:
        """``gpu`` on CUDA with the GPU metered, ``cpu`` with a CPU counter, else ``cpu-time``."""
        methods = {c.component: c.method for c in self.components}
        if self._cuda_index is not None and "gpu" in methods:
            return "gpu"
        return "cpu" if methods.get("cpu") in COUNTER_METHODS else CPU_TIME

    @property
    def headline_info(self) -> ComponentInfo:
        """How the headline component is measured."""
        self.prepare()
        headline = self.headline_component
        return next(c for c in self.components if c.component == headline)

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
        reading = WindowReading(threads=self.threads, windows=1)
        self.prepare()
        tracker = self._start_tracker() if self._codecarbon else None
        measure = tracker._measure_power_and_energy if tracker is not None else None
        sampler = _Sampler(self._gpu_watch, measure, self.measure_power_secs)
        self._reset_cuda_peak()
        try:
            with torch_threads(self.threads):
                sampler.start()
                clock = CpuClock(excluded=sampler.threads)
                try:
                    yield reading
                finally:
                    usage = clock.stop()
                    sampler.stop()
        finally:
            if tracker is not None:
                # stop() skips its closing measurement when the last one is under 50 ms old,
                # which drops all of a short window's energy: measure the tail here, always.
                tracker._measure_power_and_energy()
                tracker.stop()
        reading.wall_seconds = usage.wall_seconds
        reading.cpu_seconds = usage.cpu_seconds
        reading.other_cpu_seconds = usage.other_cpu_seconds
        reading.steal_seconds = usage.steal_seconds
        reading.cpu_mhz = usage.cpu_mhz
        reading.peak_rss_bytes = sampler.peak_rss
        reading.peak_cuda_bytes = self._cuda_peak()
        reading.gpu_shared = sampler.gpu_shared
        self.judge(reading)
        reading.metered_seconds = usage.wall_seconds
        if tracker is not None:
            data = getattr(tracker, "final_emissions_data", None)
            if data is None:
                raise RuntimeError("CodeCarbon's tracker failed to stop cleanly")
            present = {c.component for c in self.components}
            reading.joules = {
                name: float(getattr(data, f"{name}_energy")) * JOULES_PER_KWH
                for name in COMPONENTS
                if name in present and name != CPU_TIME
            }
            reading.metered_seconds = float(data.duration)
        reading.joules[CPU_TIME] = reading.cpu_seconds * self.watts_per_cpu

    def judge(self, reading: WindowReading) -> bool:
        """Flags a reading (one window, or several combined into one) as disturbed or not.

        Sets ``disturbed_windows`` to 1 or 0 and ``disturbance`` to the reason (see
        :func:`.cpu_time.disturbance`), from the reading's totals; returns whether it was.
        """
        usage = CpuUsage(
            wall_seconds=reading.wall_seconds,
            cpu_seconds=reading.cpu_seconds,
            other_cpu_seconds=reading.other_cpu_seconds,
            steal_seconds=reading.steal_seconds,
            cpu_mhz=reading.cpu_mhz,
        )
        reason = disturbance(usage, self.threads, self.cpus, gpu_shared=reading.gpu_shared)
        reading.disturbed_windows, reading.disturbance = int(reason is not None), reason or ""
        return reason is not None

    def device_name(self) -> str:
        """Name of the compute device: the GPU's name on CUDA, else the CPU model."""
        if self._cuda_index is not None:
            import torch

            return str(torch.cuda.get_device_name(self._cuda_index))
        return str(self.system.get("cpu_model") or _cpu_model_from_proc() or "unknown CPU")

    def hardware(self) -> str:
        """One line on the hardware and how each component was measured."""
        parts = [
            f"{self.system.get('cpu_count', '?')} CPU threads ({self.cpus} usable)",
            f"{self.system.get('ram_total_size', 0.0):.1f} GiB RAM",
            "torch threads while measuring: "
            + (str(self.threads) if self.threads else "torch's choice"),
        ]
        parts += [f"{c.component}: {c.method} ({c.description})" for c in self.components]
        parts.append(f"gpu sharing: {self._gpu_watch.note}")
        if self._quiet_note:
            parts.append(f"other processes before measuring: {self._quiet_note}")
        return "; ".join(parts)

    def wait_for_quiet(self, timeout: float = QUIET_TIMEOUT_SECONDS) -> QuietCheck | None:
        """Waits for other processes to leave the CPUs alone, where that matters.

        A power counter (RAPL's package, NVML's device) sees whatever else runs, so with one as
        the headline the meter waits (:func:`wait_for_quiet_machine`). The CPU time of this
        process is its own whatever else runs, so then it does not wait (each window records
        what else ran instead). The outcome is named in :meth:`hardware`.
        """
        if self.headline_info.method not in COUNTER_METHODS:
            self.quiet = None
            self._quiet_note = "not waited for (the CPU time measured is this process's own)"
            return None
        self.quiet = wait_for_quiet_machine(timeout)
        self._quiet_note = self.quiet.describe()
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
        found = components_of(tracker)
        self.watts_per_cpu = watts_per_cpu(tracker)
        counters = any(c.method in COUNTER_METHODS for c in found)
        self._codecarbon = counters or self.secondary
        per_cpu = f"{self.watts_per_cpu:.2f} W per CPU"
        cpu_time = ComponentInfo(
            CPU_TIME, CPU_TIME_METHOD, True, f"process CPU seconds x {per_cpu} (TDP model)"
        )
        self.components = [*(found if self._codecarbon else []), cpu_time]
        self.system = {
            key: tracker._conf.get(key)
            for key in ("cpu_model", "cpu_count", "gpu_model", "gpu_count", "ram_total_size")
        }

    def _start_tracker(self) -> Any:
        """A started tracker whose periodic measurements the sampler thread drives."""
        tracker = self._new_tracker()
        tracker.start()
        if getattr(tracker, "_start_time", None) is None:
            raise RuntimeError("CodeCarbon's tracker failed to start")
        # CodeCarbon's own periodic measurement can race with stop() and count an interval
        # twice (its scheduler does not wait for a running measurement), and its schedulers
        # start a new timer thread every tick, whose CPU time could not be told from the
        # work's: the sampler thread drives the measurements and is joined before stop().
        tracker._scheduler.stop()
        monitor = getattr(tracker, "_scheduler_monitor_power", None)
        if monitor is not None:
            monitor.stop()
        return tracker

    def _reset_cuda_peak(self) -> None:
        if self._cuda_index is not None:
            import torch

            torch.cuda.reset_peak_memory_stats(self._cuda_index)

    def _cuda_peak(self) -> int:
        if self._cuda_index is None:
            return 0
        import torch

        return int(torch.cuda.max_memory_allocated(self._cuda_index))


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


def watts_per_cpu(tracker: Any) -> float:
    """The per-CPU power of CodeCarbon's TDP model: its CPU's TDP over the CPUs it counts.

    That is the power CodeCarbon's ``process`` mode charges per CPU-second (here: 8 W for 2
    threads, 4 W each). Without a CPU object (Apple, Raspberry Pi), CodeCarbon's generic 4 W.
    """
    for hw in tracker._hardware:
        if type(hw).__name__ == "CPU" and getattr(hw, "_tdp", None):
            count = getattr(hw, "_cpu_count", None) or usable_cpus()
            return float(hw._tdp) / float(count)
    return _GENERIC_WATTS_PER_CPU


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


class _Sampler:
    """Background thread: CodeCarbon's periodic measurement, peak RSS, other GPU processes.

    Without a measurement to drive and off CUDA, no thread runs: the readings are taken at the
    window's start and end only.
    """

    def __init__(
        self, gpu_watch: GpuProcessWatch, measure: Callable[[], None] | None, every: float
    ) -> None:
        self._process = psutil.Process()
        self._gpu_watch = gpu_watch
        self._measure = measure
        self._every = every
        self._last_measure = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if measure is not None or gpu_watch.watching:
            self._thread = threading.Thread(target=self._run, name="energy-sampler", daemon=True)
        self.peak_rss = 0
        self.gpu_shared = False

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The sampler's thread (whose CPU time is the meter's, not the work's), if any."""
        return (self._thread,) if self._thread is not None else ()

    def start(self) -> None:
        self._sample()
        if self._thread is not None:
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_EVERY_SECONDS):
            self._sample()
            if self._measure is not None and time.perf_counter() - self._last_measure >= (
                self._every
            ):
                self._measure()
                self._last_measure = time.perf_counter()

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
        self.gpu_shared = self.gpu_shared or self._gpu_watch.others_present()


def _cpu_model_from_proc() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
