"""Energy of a model's own work: the process's CPU time, and power counters where they exist.

Modules: :mod:`.readings` (what a window reads and its summary), :mod:`.meter` (metered windows),
:mod:`.cpu_time` (CPU time of the work, other processes meanwhile, measuring threads),
:mod:`.quiet` (waiting for a quiet machine), :mod:`.nvml` (which GPU, and who else uses it).

Method (shared by the evaluation and pruning services):

* Each window measures the CPU time of the process doing the work (all threads, user + system,
  less the meter's sampling thread), with half the usable CPUs as torch threads so that a
  neighbour finds a free core, and the CPU time other processes used meanwhile (``/proc/stat``
  minus this process). A window whose neighbours used more cores than were left free is
  flagged as disturbed.
* Where CodeCarbon reads a hardware counter (RAPL for the CPU package, NVML for a GPU), that
  counter's energy over the window is the headline, and CPU time stays beside it as a check.
  Where it reads none, the headline is the ``cpu-time`` component: CPU seconds x the per-CPU
  power of CodeCarbon's TDP model (method ``cpu-time-estimate``, an estimate). Wall time never
  stands in for work. CodeCarbon's own estimates (``cpu-load-estimate``, which in ``process``
  mode is the same CPU time x TDP / CPUs, and the constant ``ram``) stay as secondary
  components where the meter runs CodeCarbon at all.
* An optional idle baseline (the meter running while the process sleeps) gives the idle power
  of each component; ``net = gross - idle_watts x window_seconds``, per component. Net is not
  floored at zero (a negative net says the work was indistinguishable from idle) and is never
  above gross. The process's CPU time while it sleeps is close to nothing.
* Repeats are summarised by their median and a confidence interval (see :func:`interval`).
"""
