"""When the energy a compressed checkpoint saves per token has repaid what making it cost.

Pruning (calibration included) and recovery fine-tuning cost energy once; inference with the
smaller checkpoint saves energy on every token. The payback is the number of inference tokens
after which the saving has repaid the cost::

    saving per token = -(J/token change) x baseline J/token     (change = other / baseline - 1)
    payback tokens   = (pruning J + recovery J) / saving per token

The interval comes from the change's interval (the costs are single metered windows): the
largest saving gives the fewest tokens and the smallest saving the most. When the saving's
interval reaches 0 the payback is a bound, "≥ N tokens" (N from the largest saving, no upper
end: possibly never); it is "never" only when the saving is measurably not above 0 (the
change's interval lies at or above 0).

A cost and a saving are divided only when they were measured the same way
(:func:`mismatch`): both from hardware counters (RAPL, NVML), or both CPU-time estimates (the
process's CPU seconds x the per-CPU power of the TDP model). Both are net of an idle baseline
measured alike, and the pruning's and recovery's windows cover the work only, not loading or
saving the model, as the profile's windows cover the forwards only.
The arithmetic lives here only; the findings view, ``greenprune report`` and the app use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core.energy.readings import COUNTER_METHODS, CPU_TIME_METHOD

NEVER = "never"
"""The payback text when the saving per token is measurably not above zero."""

AT_LEAST = "\u2265"


@dataclass(frozen=True)
class Payback:
    """The payback of one checkpoint at one profile batch size.

    Attributes:
        cost_joules: Pruning plus recovery energy, net joules.
        saving: Joules saved per token: median and interval (low <= median <= high).
        tokens: Tokens until repaid at the median saving; None when it is not above 0.
        tokens_low: Fewest tokens (largest saving); None for never.
        tokens_high: Most tokens (smallest saving); None when open (the saving's interval
            reaches 0) or never.
        never: Whether the saving is measurably not above 0.
    """

    cost_joules: float
    saving: tuple[float, float, float]
    tokens: float | None
    tokens_low: float | None
    tokens_high: float | None
    never: bool = False

    @property
    def open_ended(self) -> bool:
        """Whether only a lower bound is known (the saving's interval reaches 0)."""
        return not self.never and self.tokens_low is not None and self.tokens_high is None

    def describe(self) -> str:
        """``1.2M tokens [0.9M, 1.8M]``, ``≥ 0.9M tokens (possibly never)`` or ``never``."""
        if self.never or self.tokens_low is None:
            return NEVER
        if self.tokens_high is None:
            return f"{AT_LEAST} {format_tokens(self.tokens_low)} tokens (possibly never)"
        assert self.tokens is not None
        return (
            f"{format_tokens(self.tokens)} tokens "
            f"[{format_tokens(self.tokens_low)}, {format_tokens(self.tokens_high)}]"
        )


def payback(cost_joules: float, baseline_joules_per_token: float, change: Interval) -> Payback:
    """The tokens of inference that repay ``cost_joules``.

    Args:
        cost_joules: Energy spent once (pruning plus recovery), net joules, >= 0.
        baseline_joules_per_token: The baseline's J/token at the stated batch size and phase.
        change: The paired relative change of J/token against the baseline (negative: saves),
            with finite bounds.

    Returns:
        The payback: bounded when the change's interval lies below 0, ``≥ N tokens`` when it
        reaches 0, ``never`` when it lies at or above 0.

    Raises:
        ValueError: On a negative cost, a baseline J/token that is not positive, or a change
            whose figures are not finite.
    """
    if not math.isfinite(cost_joules) or cost_joules < 0:
        raise ValueError(f"the cost must be a finite number of joules >= 0, not {cost_joules}")
    if not math.isfinite(baseline_joules_per_token) or baseline_joules_per_token <= 0:
        raise ValueError(f"the baseline J/token must be positive, not {baseline_joules_per_token}")
    bounds = (change.median, change.low, change.high)
    if not all(math.isfinite(v) for v in bounds):
        raise ValueError(f"the change needs finite figures, not {bounds}")
    saving = (
        -change.median * baseline_joules_per_token,
        -change.high * baseline_joules_per_token,
        -change.low * baseline_joules_per_token,
    )
    if saving[2] <= 0.0:
        return Payback(cost_joules, saving, None, None, None, never=True)
    return Payback(
        cost_joules,
        saving,
        tokens=cost_joules / saving[0] if saving[0] > 0 else None,
        tokens_low=cost_joules / saving[2],
        tokens_high=cost_joules / saving[1] if saving[1] > 0 else None,
    )


def measure_kind(method: str) -> str:
    """What a method measures: ``counter`` (RAPL, NVML), ``cpu-time``, or the method itself."""
    if method in COUNTER_METHODS:
        return "counter"
    return "cpu-time" if method == CPU_TIME_METHOD else method or "unrecorded"


def mismatch(saving_method: str, cost_methods: dict[str, str]) -> str | None:
    """Why a saving and the costs cannot be divided, or None when they were measured alike.

    Args:
        saving_method: How the profile measured the saving (its energy method).
        cost_methods: How each cost was measured, by name (``pruning``, ``recovery``).
    """
    want = measure_kind(saving_method)
    for name, method in cost_methods.items():
        if measure_kind(method) != want:
            return (
                f"the {name} was measured as {method or 'an unrecorded method'}, the saving as "
                f"{saving_method or 'an unrecorded method'}"
            )
    return None


def format_tokens(tokens: float) -> str:
    """Tokens with a k/M/G/T suffix: ``950``, ``12.3k``, ``4.1M``."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(tokens) >= scale:
            return f"{tokens / scale:.3g}{suffix}"
    return f"{tokens:.0f}"
