"""Metering windows of work with CodeCarbon, against an optional idle baseline."""

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

from greenprune.core.energy.nvml import GpuProcessWatch, cuda_index, nvml_index
from greenprune.core.energy.quiet import QUIET_TIMEOUT_SECONDS, QuietCheck, wait_for_quiet_machine
from greenprune.core.energy.readings import COMPONENTS, ComponentInfo, WindowReading

JOULES_PER_KWH = 3.6e6
_SAMPLE_EVERY_SECONDS = 0.2


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
        self._cuda_index = cuda_index(device)
        self._nvml_index, self._nvml_note = nvml_index(self._cuda_index)
        self._gpu_watch = GpuProcessWatch(self._nvml_index, self._nvml_note)

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


class _Sampler:
    """Background thread: CodeCarbon's periodic measurement, peak RSS, other GPU processes."""

    def __init__(
        self, gpu_watch: GpuProcessWatch, measure: Callable[[], None], every: float
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


def _cpu_model_from_proc() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
