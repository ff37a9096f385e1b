"""Energy of a model's own work, metered with CodeCarbon.

Modules: :mod:`.readings` (what a window reads and its summary),
:mod:`.meter` (CodeCarbon windows), :mod:`.quiet` (waiting for a quiet machine),
:mod:`.nvml` (which GPU, and who else uses it).

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
