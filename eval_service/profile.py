"""A steady-state energy profile of several checkpoints, measured in interleaved rounds.

The way ML.ENERGY and optimum-benchmark measure: fixed-length prefill (one forward over a
prompt of ``prefill_tokens``) and decode (``decode_tokens`` new tokens, one forward each, on a
KV cache), at several batch sizes, each window repeated until it lasts ``window_seconds`` so that
the model's arithmetic dominates it. Checkpoints are measured in rounds: every round visits
every (phase, batch size) and, within it, every checkpoint once, in an order shuffled with the
seed, so drift, heat and other processes fall on all of them alike; differences are then paired
by round (see :func:`greenprune.core.stats.paired_ratio_change`). No grpc here.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.api.eval.v1 import eval_pb2
from greenprune.core.energy.meter import EnergyMeter

PHASES = ("prefill", "decode")
DECODE_PROMPT_TOKENS = 16
"""The prompt the decode phase continues (its prefill is outside the window)."""


@dataclass(frozen=True)
class ProfileConfig:
    """What a profile job measures (defaults come from the normalized spec).

    Attributes:
        checkpoint_ids: The checkpoints; the first is the baseline.
        batch_sizes: Sequences per forward, one window each.
        prefill_tokens: Prompt tokens per sequence of the prefill phase.
        decode_tokens: New tokens per sequence of the decode phase.
        rounds: Rounds over every checkpoint.
        window_seconds: The least length of a window.
        device: ``cpu`` or ``cuda:N`` (resolved).
        idle_seconds: Length of the idle baseline; 0 for none.
        seed: Seeds the prompts and the round orders.
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

        The prompt's cache is built before the loop and cropped back after each decode, so
        only the decode steps repeat.
        """
        import torch

        with torch.inference_mode():
            out = self.model(self.decode_prompt, use_cache=True)
            cache = out.cache
            first = out.logits[:, -1:].argmax(-1)
            self._sync()
            for _ in range(iterations):
                token = first
                for _ in range(self.config.decode_tokens):
                    step = self.model(token, cache=cache, use_cache=True)
                    token = step.logits[:, -1:].argmax(-1)
                cache.crop(-self.config.decode_tokens)
            self._sync()
        return iterations * self.batch * self.config.decode_tokens

    def run(self, phase: str, iterations: int) -> int:
        """Runs one phase ``iterations`` times; returns the tokens."""
        return self.prefill(iterations) if phase == "prefill" else self.decode(iterations)

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)


def _iterations_for(workload: _Workload, phase: str, window_seconds: float) -> int:
    """How many repetitions fill a window: timed on two warm repetitions."""
    workload.run(phase, 1)  # warm-up: allocations, kernels
    started = time.perf_counter()
    workload.run(phase, 1)
    once = max(time.perf_counter() - started, 1e-6)
    return max(1, math.ceil(window_seconds / once))


def run_profile(
    models: Sequence[Any],
    config: ProfileConfig,
    *,
    workdir: Path,
    progress: Callable[[str, float], None],
) -> eval_pb2.ProfileResult:
    """Measures every model's profile in interleaved rounds.

    Args:
        models: The loaded models, in ``config.checkpoint_ids`` order, on ``config.device``.
        config: What to measure.
        workdir: CodeCarbon's output folder (nothing is written there).
        progress: Called with (stage, overall fraction).

    Returns:
        Every window as a ProfilePoint, with how the energy was measured.
    """
    meter = EnergyMeter(config.device, workdir)
    meter.prepare()
    cells = [(phase, batch) for phase in PHASES for batch in config.batch_sizes]
    workloads = {
        (index, batch): _Workload(model, config, batch, config.device)
        for index, model in enumerate(models)
        for batch in config.batch_sizes
    }
    progress("calibrating windows", 0.0)
    iterations = {
        (index, phase, batch): _iterations_for(
            workloads[index, batch], phase, config.window_seconds
        )
        for index in range(len(models))
        for phase, batch in cells
    }
    progress("quiet-check", 0.05)
    meter.wait_for_quiet()
    if config.idle_seconds > 0:
        progress("idle-baseline", 0.07)
        meter.measure_idle(config.idle_seconds)
    headline = meter.headline_component
    result = eval_pb2.ProfileResult(
        prefill_tokens=config.prefill_tokens,
        decode_tokens=config.decode_tokens,
        idle_watts=meter.idle_watts.get(headline, 0.0),
    )
    orders = round_orders(len(models), config.rounds, config.seed)
    total = config.rounds * len(cells) * len(models)
    done = 0
    for round_index, order in enumerate(orders):
        for phase, batch in cells:
            progress(
                f"round {round_index + 1}/{config.rounds}: {phase} at batch {batch}",
                0.1 + 0.9 * done / total,
            )
            for position, index in enumerate(order):
                count = iterations[index, phase, batch]
                with meter.window() as reading:
                    tokens = workloads[index, batch].run(phase, count)
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
                        tokens=tokens,
                        iterations=count,
                    )
                )
                done += 1
    info = next(c for c in meter.components if c.component == headline)
    result.energy_method, result.estimated = info.method, info.estimated
    result.hardware, result.device_name = meter.hardware(), meter.device_name()
    progress("done", 1.0)
    return result
