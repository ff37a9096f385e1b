"""A steady-state energy profile of several checkpoints, measured in interleaved rounds.

The way ML.ENERGY and optimum-benchmark measure: fixed-length prefill (one forward over a
prompt of ``prefill_tokens``) and decode (``decode_tokens`` new tokens, one forward each, on a
KV cache), at several batch sizes, each window repeated until it holds ``window_seconds`` of
work (CPU seconds on the CPU, wall seconds on CUDA) so that the model's arithmetic dominates it.
Checkpoints are measured in rounds: every round visits every (phase, batch size) and, within it,
every checkpoint once, in an order shuffled with the seed, so drift and other processes fall on
all of them alike; differences are then paired by round (see
:func:`greenprune.core.stats.paired_ratio_change`).

What a window measures is the meter's (:class:`~greenprune.core.energy.meter.EnergyMeter`): a
power counter where one exists, else the process's CPU time (an estimate in joules is derived
from it), with the torch threads of :func:`~greenprune.core.energy.cpu_time.measurement_threads`.
A window that other processes disturbed is measured again, at most :data:`MAX_REMEASURES` times
and within :data:`REMEASURE_SHARE` of the windows, and the least disturbed attempt is kept.
With a ``precision``, rounds go on until every comparison's interval is narrower than it, or
``max_rounds``; a (phase, batch size) whose comparisons are all that precise is left out of the
later rounds. Stopping looks at the widths only, never at where the intervals lie. No grpc here.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.api.common.v1.kernels_pb2 import KernelPath
from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.energy.cpu_time import (
    disturbance_threshold,
    keep_freed_memory,
    torch_threads,
)
from greenprune.core.energy.meter import EnergyMeter
from greenprune.core.energy.readings import COUNTER_METHODS, WindowReading
from greenprune.core.errors import InvalidArgumentError
from greenprune.core.limits import PROFILE_AUTO_SPEC, PROFILE_THREADS, check
from greenprune.core.stats import paired_ratio_change

PHASES = ("prefill", "decode")
DECODE_PROMPT_TOKENS = 16
"""The prompt the decode phase continues (its prefill is outside the window)."""

MAX_REMEASURES = 2
"""The most times one disturbed window is measured again."""

REMEASURE_SHARE = 0.1
"""Round-cells measured again stay under this share of those measured (plus
:data:`MAX_REMEASURES`): a disturbance that passes is measured around, while a machine that
stays busy costs a tenth more time, not triple (the pairing within a round copes with it)."""

MAX_SLICES = 8
"""The most slices a window is cut into to interleave the checkpoints of a round."""

MIN_SLICES = 4
"""The fewest slices of a window where slices are used: a window holds at least this many
repetitions even when fewer fill ``window_seconds`` (large batches), since a single long
forward is what a neighbour's memory traffic disturbs most."""


@dataclass(frozen=True)
class ProfileConfig:
    """What a profile job measures (defaults come from the normalized spec).

    Attributes:
        checkpoint_ids: The checkpoints; the first is the baseline.
        batch_sizes: Sequences per forward, one window each.
        prefill_tokens: Prompt tokens per sequence of the prefill phase.
        decode_tokens: New tokens per sequence of the decode phase.
        rounds: Rounds over every checkpoint (with a precision: before the first check).
        window_seconds: The least work of a window: CPU seconds on the CPU, wall on CUDA.
        device: ``cpu`` or ``cuda:N`` (resolved).
        idle_seconds: Length of the idle baseline; 0 for none.
        seed: Seeds the prompts and the round orders.
        precision: 0 for exactly ``rounds`` rounds; above 0, the widest relative interval of a
            comparison against the baseline at which the rounds stop.
        max_rounds: The most rounds with a precision.
        threads: Torch threads during the windows; 0 chooses.
    """

    checkpoint_ids: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    prefill_tokens: int
    decode_tokens: int
    rounds: int
    window_seconds: float
    device: str
    idle_seconds: float
    seed: int
    precision: float = 0.0
    max_rounds: int = 0
    threads: int = 0

    @property
    def round_limit(self) -> int:
        """The most rounds measured."""
        return max(self.rounds, self.max_rounds) if self.precision > 0 else self.rounds


def check_rounds_and_threads(spec: eval_pb2.EvalSpec) -> None:
    """Refuses a (normalized) profile spec's precision, max_rounds or threads out of bounds.

    Raises:
        InvalidArgumentError: Naming the field.
    """
    profile = spec.profile
    if profile.precision < 0:
        raise InvalidArgumentError(
            "spec.profile.precision", f"{profile.precision!r} is below 0 (0: fixed rounds)"
        )
    if profile.precision > 0:
        check(spec, PROFILE_AUTO_SPEC)
        if profile.max_rounds < profile.rounds:
            raise InvalidArgumentError(
                "spec.profile.max_rounds",
                f"{profile.max_rounds} is below rounds ({profile.rounds}), the rounds measured "
                "before the first check",
            )
    if profile.threads and not PROFILE_THREADS.allows(profile.threads):
        raise InvalidArgumentError(
            "spec.profile.threads",
            f"{profile.threads} is not {PROFILE_THREADS.describe()} (0: automatic)",
        )


def round_orders(count: int, rounds: int, seed: int) -> list[list[int]]:
    """The order of ``count`` configurations in each round, shuffled with ``seed``."""
    rng = random.Random(seed)
    orders = []
    for _ in range(rounds):
        order = list(range(count))
        rng.shuffle(order)
        orders.append(order)
    return orders


class _Workload:
    """One model's prefill and decode work at one batch size, with its fixed inputs."""

    def __init__(self, model: Any, config: ProfileConfig, batch: int, device: str) -> None:
        import torch

        self.model = model
        self.batch = batch
        self.config = config
        self.device = device
        generator = torch.Generator().manual_seed(config.seed + batch)
        vocab = int(model.config.vocab_size)
        self.prompt = torch.randint(
            0, vocab, (batch, config.prefill_tokens), generator=generator
        ).to(device)
        self.decode_prompt = self.prompt[:, : min(DECODE_PROMPT_TOKENS, config.prefill_tokens)]
        self._cache: Any = None
        self._first: Any = None

    def prefill(self, iterations: int) -> int:
        """Runs ``iterations`` prefill forwards; returns the tokens processed."""
        import torch

        with torch.inference_mode():
            for _ in range(iterations):
                self.model(self.prompt, use_cache=False)
        self._sync()
        return iterations * self.batch * self.config.prefill_tokens

    def decode(self, iterations: int) -> int:
        """Runs ``iterations`` decodes of ``decode_tokens`` each; returns the tokens generated.

        The prompt's cache is built once, on the first call (the calibration's warm-up, outside
        any window), and cropped back after each decode, so only the decode steps repeat.
        """
        import torch

        with torch.inference_mode():
            if self._cache is None:
                out = self.model(self.decode_prompt, use_cache=True)
                self._cache, self._first = out.cache, out.logits[:, -1:].argmax(-1)
                self._sync()
            for _ in range(iterations):
                token = self._first
                for _ in range(self.config.decode_tokens):
                    step = self.model(token, cache=self._cache, use_cache=True)
                    token = step.logits[:, -1:].argmax(-1)
                self._cache.crop(-self.config.decode_tokens)
            self._sync()
        return iterations * self.batch * self.config.decode_tokens

    def run(self, phase: str, iterations: int) -> int:
        """Runs one phase ``iterations`` times; returns the tokens."""
        return self.prefill(iterations) if phase == "prefill" else self.decode(iterations)

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)


def _iterations_for(
    workload: _Workload,
    phase: str,
    window_seconds: float,
    clock: Callable[[], float],
    least: int = 1,
) -> int:
    """How many repetitions fill a window (at least ``least``): timed on two warm ones."""
    workload.run(phase, 1)  # warm-up: allocations, kernels
    started = clock()
    workload.run(phase, 1)
    once = max(clock() - started, 1e-6)
    return max(least, math.ceil(window_seconds / once))


def comparison_widths(
    points: Sequence[eval_pb2.ProfilePoint], baseline: str
) -> dict[tuple[str, int, str], float]:
    """Each comparison's relative interval width (``high - low`` of the paired change).

    A comparison is one checkpoint against ``baseline`` at one phase and batch size, its net
    J/token paired by round. A comparison with fewer than two rounds, or with a window whose
    net energy is not positive, is infinitely wide.
    """
    per_round: dict[tuple[str, int, str], dict[int, float]] = {}
    for point in points:
        key = (point.phase, point.batch_size, point.checkpoint_id)
        value = point.net_joules / point.tokens if point.tokens > 0 else 0.0
        per_round.setdefault(key, {})[point.round] = value
    widths: dict[tuple[str, int, str], float] = {}
    for (phase, batch, checkpoint), values in per_round.items():
        if checkpoint == baseline:
            continue
        base = per_round.get((phase, batch, baseline), {})
        rounds = sorted(set(base) & set(values))
        pairs = [(base[r], values[r]) for r in rounds]
        if len(pairs) < 2 or min(min(pair) for pair in pairs) <= 0.0:
            widths[phase, batch, checkpoint] = math.inf
            continue
        change = paired_ratio_change([b for b, _ in pairs], [o for _, o in pairs])
        widths[phase, batch, checkpoint] = change.high - change.low
    return widths


def slice_counts(iterations: int, slices: int) -> list[int]:
    """``iterations`` split into ``slices`` near-equal chunks (larger ones first)."""
    base, extra = divmod(iterations, slices)
    return [base + (1 if index < extra else 0) for index in range(slices)]


def _disturbance_rank(readings: Sequence[WindowReading]) -> tuple[int, float]:
    """Orders attempts from the least disturbed: fewest disturbed windows, then least load."""
    return sum(r.disturbed_windows for r in readings), max(r.other_cores for r in readings)


class _Cells:
    """Measures one (phase, batch size) of a round: every checkpoint's window, interleaved.

    Each checkpoint's window is cut into slices and the slices alternate between the
    checkpoints (in the round's order, then reversed, and so on), so the windows of one round
    span the same seconds and whatever else the machine does falls on all of them alike. A
    window is the sum of its slices. When a window is disturbed the whole cell is measured
    again (bounded by :data:`MAX_REMEASURES` and :data:`REMEASURE_SHARE`) and the least
    disturbed attempt is kept, so the windows of a round stay paired.
    """

    def __init__(self, meter: EnergyMeter, max_slices: int) -> None:
        self.meter = meter
        self.max_slices = max_slices
        self.cells = 0
        self.windows = 0
        self.remeasured = 0
        self.disturbed = 0
        self.other_cores: list[float] = []
        self.gpu_shared = 0

    def allowed(self) -> bool:
        return self.remeasured < REMEASURE_SHARE * self.cells + MAX_REMEASURES

    def measure(
        self, runs: Sequence[tuple[Callable[[int], int], int]]
    ) -> tuple[list[WindowReading], list[int], int]:
        """Measures ``runs`` (each: work of n iterations -> tokens, and its iterations).

        Returns:
            The kept windows and tokens, in the order of ``runs``, and the attempts made.
        """
        attempts: list[tuple[list[WindowReading], list[int]]] = []
        while True:
            readings, tokens = self._once(runs)
            attempts.append((readings, tokens))
            worst = [r for r in readings if r.disturbed_windows]
            if not worst:
                break
            self.other_cores.extend(r.other_cores for r in worst)
            self.gpu_shared += sum(r.gpu_shared for r in worst)
            if len(attempts) > MAX_REMEASURES or not self.allowed():
                break
            self.remeasured += 1
        self.cells += 1
        self.windows += len(runs)
        kept, tokens = min(attempts, key=lambda a: _disturbance_rank(a[0]))
        self.disturbed += sum(r.disturbed_windows for r in kept)
        return kept, tokens, len(attempts)

    def _once(
        self, runs: Sequence[tuple[Callable[[int], int], int]]
    ) -> tuple[list[WindowReading], list[int]]:
        slices = max(1, min(self.max_slices, *(count for _, count in runs)))
        plans = [slice_counts(count, slices) for _, count in runs]
        parts: list[list[WindowReading]] = [[] for _ in runs]
        tokens = [0] * len(runs)
        for index in range(slices):
            order = range(len(runs)) if index % 2 == 0 else reversed(range(len(runs)))
            for position in order:
                run, count = runs[position][0], plans[position][index]
                if count == 0:
                    continue
                with self.meter.window() as reading:
                    tokens[position] += run(count)
                parts[position].append(reading)
        readings = []
        for part in parts:
            combined = WindowReading.combine(part)
            combined.windows = 1
            self.meter.judge(combined)
            readings.append(combined)
        return readings, tokens

    def note(self, threshold: float, cpus: int, threads: int) -> str:
        text = (
            f"a window is disturbed when other processes use more than {threshold:.2f} cores "
            f"({cpus} usable CPUs, {threads or 'torch-chosen'} measuring threads); "
            f"{self.remeasured} of {self.cells} round-cells ({self.windows} windows) measured "
            f"again, {self.disturbed} windows kept while still disturbed"
        )
        if self.other_cores:
            text += (
                f"; disturbed windows saw other processes on "
                f"{min(self.other_cores):.2f}-{max(self.other_cores):.2f} cores"
            )
        if self.gpu_shared:
            text += f"; {self.gpu_shared} windows shared the GPU with another process"
        return text


def run_profile(
    models: Sequence[Any],
    config: ProfileConfig,
    *,
    workdir: Path,
    progress: Callable[[str, float], None],
    kernel_paths: Sequence[KernelPath] = (),
) -> eval_pb2.ProfileResult:
    """Measures every model's profile in interleaved rounds.

    Args:
        models: The loaded models, in ``config.checkpoint_ids`` order, on ``config.device``.
        config: What to measure.
        kernel_paths: The kernel path each model runs on (``kernels.prepare``), in the same
            order; every window records its model's. Empty: none recorded.
        workdir: CodeCarbon's output folder (nothing is written there).
        progress: Called with (stage, overall fraction).

    Returns:
        Every kept window as a ProfilePoint, with how the energy was measured and why the
        rounds stopped.
    """
    meter = EnergyMeter(config.device, workdir, threads=config.threads, secondary=False)
    meter.prepare()
    allocator = keep_freed_memory()
    with torch_threads(meter.threads):
        result = _profile(models, config, meter, progress, kernel_paths)
    if allocator:
        result.hardware += f"; {allocator}"
    return result


def _profile(
    models: Sequence[Any],
    config: ProfileConfig,
    meter: EnergyMeter,
    progress: Callable[[str, float], None],
    kernel_paths: Sequence[KernelPath] = (),
) -> eval_pb2.ProfileResult:
    info = meter.headline_info
    paths = list(kernel_paths) or [KernelPath() for _ in models]
    on_cuda = config.device.startswith("cuda")
    cells = [(phase, batch) for phase in PHASES for batch in config.batch_sizes]
    workloads = {
        (index, batch): _Workload(model, config, batch, config.device)
        for index, model in enumerate(models)
        for batch in config.batch_sizes
    }
    progress("calibrating windows", 0.0)
    clock = time.perf_counter if on_cuda else time.process_time
    sliced = info.method not in COUNTER_METHODS
    iterations = {
        (index, phase, batch): _iterations_for(
            workloads[index, batch],
            phase,
            config.window_seconds,
            clock,
            least=MIN_SLICES if sliced else 1,
        )
        for index in range(len(models))
        for phase, batch in cells
    }
    progress("quiet-check", 0.05)
    meter.wait_for_quiet()  # with a counter only: it sees whatever else runs
    if config.idle_seconds > 0:
        progress("idle-baseline", 0.07)
        meter.measure_idle(config.idle_seconds)
    headline = meter.headline_component
    result = eval_pb2.ProfileResult(
        prefill_tokens=config.prefill_tokens,
        decode_tokens=config.decode_tokens,
        idle_watts=meter.idle_watts.get(headline, 0.0),
        energy_method=info.method,
        estimated=info.estimated,
        threads=meter.threads,
        usable_cpus=meter.cpus,
        watts_per_cpu=meter.watts_per_cpu,
        precision=config.precision if config.precision > 0 else 0.0,
    )
    limit = config.round_limit
    orders = round_orders(len(models), limit, config.seed)
    # Slices need cheap windows: a CodeCarbon tracker per slice would cost more than it shows.
    measured = _Cells(meter, MAX_SLICES if sliced else 1)
    widest = math.inf
    stop = f"a fixed {config.rounds} rounds"
    active = list(cells)
    for round_index, order in enumerate(orders):
        for cell, (phase, batch) in enumerate(active):
            progress(
                f"round {round_index + 1}/{limit}: {phase} at batch {batch}",
                0.1 + 0.9 * (round_index + cell / len(active)) / limit,
            )
            runs = [
                (
                    lambda n, w=workloads[index, batch], p=phase: w.run(p, n),
                    iterations[index, phase, batch],
                )
                for index in order
            ]
            readings, tokens, attempts = measured.measure(runs)
            for position, index in enumerate(order):
                reading = readings[position]
                result.points.append(
                    eval_pb2.ProfilePoint(
                        checkpoint_id=config.checkpoint_ids[index],
                        phase=phase,
                        batch_size=batch,
                        round=round_index,
                        position=position,
                        net_joules=reading.net_joules(headline, meter.idle_watts),
                        gross_joules=reading.joules.get(headline, 0.0),
                        wall_seconds=reading.wall_seconds,
                        tokens=tokens[position],
                        iterations=iterations[index, phase, batch],
                        cpu_seconds=reading.cpu_seconds,
                        other_cpu_seconds=reading.other_cpu_seconds,
                        steal_seconds=reading.steal_seconds,
                        cpu_mhz=reading.cpu_mhz,
                        attempts=attempts,
                        disturbed=reading.disturbed_windows > 0,
                        gpu_shared=reading.gpu_shared,
                        kernel_path=paths[index].name,
                        macs_skipped_share=paths[index].macs_skipped_share,
                    )
                )
        rounds = round_index + 1
        if len(models) > 1 and rounds >= 2:
            widths = comparison_widths(result.points, config.checkpoint_ids[0])
            widest = max(widths.values()) if widths else math.inf
            if config.precision > 0 and rounds >= config.rounds:
                # A (phase, batch) whose comparisons are all precise is not measured again;
                # the others go on. Only the widths decide, never where the intervals lie.
                active = [
                    (phase, batch)
                    for phase, batch in active
                    if any(
                        width >= config.precision
                        for (p, b, _), width in widths.items()
                        if (p, b) == (phase, batch)
                    )
                ]
        if config.precision > 0 and rounds >= config.rounds and widest < config.precision:
            stop = f"every interval narrower than {config.precision:g} after {rounds} rounds"
            break
        if config.precision > 0 and rounds == limit:
            stop = (
                f"max_rounds {limit} reached with the widest interval {widest:.3f} "
                f"(asked: {config.precision:g})"
            )
    result.rounds = rounds
    result.stop_reason = stop
    result.widest_interval = widest if math.isfinite(widest) else 0.0
    result.remeasured_windows = measured.remeasured * len(models)
    result.disturbed_windows = measured.disturbed
    result.disturbance_note = measured.note(
        disturbance_threshold(meter.threads, meter.cpus), meter.cpus, meter.threads
    )
    result.hardware, result.device_name = meter.hardware(), meter.device_name()
    progress("done", 1.0)
    return result
