"""When the energy a compressed checkpoint saves per token has repaid what making it cost.

Pruning (calibration included) and recovery fine-tuning cost energy once; inference with the
smaller checkpoint saves energy on every token. The payback is the number of inference tokens
after which the saving has repaid the cost::

    saving per token = -(J/token change) x baseline J/token     (change = other / baseline - 1)
    payback tokens   = (pruning J + recovery J) / saving per token

The interval propagates every figure's uncertainty that is known: the change's interval
always; the baseline J/token's interval (its rounds) and the cost's (the spread of the pruning
draws of a point, ``pruning.seeds``) when given. With the change's alone it is exact: the
largest saving gives the fewest tokens and the smallest saving the most. With the others it is
a Monte Carlo propagation seeded with the experiment's seed (:func:`payback`): each figure is
drawn from its interval on the log scale (Student's t with the interval's degrees of freedom,
a split scale where the interval is not symmetric; the cost around the draws' mean with the
standard error of their logarithms, Student's t with one degree of freedom fewer than the
draws: two draws give a wide interval, as they should), and the payback's bounds are the
quantiles of cost / saving. A cost known from one draw is one measurement (``cost_draws`` 1)
and is taken as exact.

Whether the payback is bounded, open or never is read from the change's interval alone (the
baseline's J/token and the cost are positive and cannot turn a saving into a loss): when the
saving's interval reaches 0 the payback is a bound, "≥ N tokens" (N from the largest saving,
no upper end: possibly never); it is "never" only when the saving is measurably not above 0
(the change's interval lies at or above 0).

The same arithmetic gives the payback of a declared request mix (``workload:`` in the
experiment file) in requests: the "token" is then a request, the J/token the J/request.

A cost and a saving are divided only when they were measured the same way
(:func:`mismatch`): both from hardware counters (RAPL, NVML), or both CPU-time estimates (the
process's CPU seconds x the per-CPU power of the TDP model). Both are net of an idle baseline
measured alike, and the pruning's and recovery's windows cover the work only, not loading or
saving the model, as the profile's windows cover the forwards only.
The arithmetic lives here only; the findings view, ``greenprune report`` and the app use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core.energy.readings import COUNTER_METHODS, CPU_TIME_METHOD
from greenprune.core.stats import CONFIDENCE

NEVER = "never"
"""The payback text when the saving per token is measurably not above zero."""

AT_LEAST = "\u2265"

MONTE_CARLO_DRAWS = 20_000
"""The Monte Carlo draws of one propagated payback interval (its quantiles move by well under
1% between seeds)."""


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
        method: How the interval was found: ``change-interval`` (the change's alone, exact) or
            ``monte-carlo`` (the baseline's and the cost's uncertainty too).
        cost_draws: The pruning draws the cost is known from (1: one measurement, exact).
        unit: What the payback counts: ``tokens`` or ``requests``.
    """

    cost_joules: float
    saving: tuple[float, float, float]
    tokens: float | None
    tokens_low: float | None
    tokens_high: float | None
    never: bool = False
    method: str = "change-interval"
    cost_draws: int = 1
    unit: str = "tokens"

    @property
    def open_ended(self) -> bool:
        """Whether only a lower bound is known (the saving's interval reaches 0)."""
        return not self.never and self.tokens_low is not None and self.tokens_high is None

    def describe(self) -> str:
        """``1.2M tokens [0.9M, 1.8M]``, ``≥ 0.9M tokens (possibly never)`` or ``never``."""
        if self.never or self.tokens_low is None:
            return NEVER
        unit = self.unit
        if self.tokens_high is None:
            return f"{AT_LEAST} {format_tokens(self.tokens_low)} {unit} (possibly never)"
        assert self.tokens is not None
        return (
            f"{format_tokens(self.tokens)} {unit} "
            f"[{format_tokens(self.tokens_low)}, {format_tokens(self.tokens_high)}]"
        )


def payback(
    cost_joules: float | Sequence[float],
    baseline_joules_per_token: float,
    change: Interval,
    *,
    baseline: Interval | None = None,
    seed: int = 0,
    unit: str = "tokens",
) -> Payback:
    """The tokens (or requests) of inference that repay the cost.

    Args:
        cost_joules: Energy spent once (pruning plus recovery), net joules, >= 0; or the costs
            of several pruning draws of the same point, whose mean is the cost and whose spread
            its uncertainty.
        baseline_joules_per_token: The baseline's J/token at the stated batch size and phase
            (or J/request of a request mix).
        change: The paired relative change of J/token against the baseline (negative: saves),
            with finite bounds (``count``: the rounds, for Student's t).
        baseline: The baseline J/token's interval (its rounds); None takes it as exact.
        seed: Seeds the Monte Carlo propagation (the experiment's seed).
        unit: What the payback counts (``tokens``, ``requests``).

    Returns:
        The payback: bounded when the change's interval lies below 0, ``≥ N tokens`` when it
        reaches 0, ``never`` when it lies at or above 0.

    Raises:
        ValueError: On a negative cost, a baseline J/token that is not positive, or a change
            whose figures are not finite.
    """
    costs = [cost_joules] if isinstance(cost_joules, int | float) else list(cost_joules)
    if not costs:
        raise ValueError("the cost needs at least one measurement")
    for cost in costs:
        if not math.isfinite(cost) or cost < 0:
            raise ValueError(f"the cost must be a finite number of joules >= 0, not {cost}")
    cost = math.fsum(costs) / len(costs)
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
        return Payback(cost, saving, None, None, None, never=True, cost_draws=len(costs), unit=unit)
    tokens = cost / saving[0] if saving[0] > 0 else None
    uncertain_base = baseline is not None and _interval_width(baseline) > 0
    uncertain_cost = len(costs) > 1 and max(costs) > min(costs)
    if not (uncertain_base or uncertain_cost):
        return Payback(
            cost,
            saving,
            tokens=tokens,
            tokens_low=cost / saving[2],
            tokens_high=cost / saving[1] if saving[1] > 0 else None,
            cost_draws=len(costs),
            unit=unit,
        )
    rng = np.random.default_rng(seed)
    change_draws = np.expm1(_log_draws(rng, change, shift=1.0))
    base_draws = (
        np.exp(_log_draws(rng, baseline, shift=0.0))
        if uncertain_base and baseline is not None
        else np.full(MONTE_CARLO_DRAWS, baseline_joules_per_token)
    )
    cost_draws = np.full(MONTE_CARLO_DRAWS, cost)
    if uncertain_cost:
        noise = sps.t.rvs(len(costs) - 1, size=MONTE_CARLO_DRAWS, random_state=rng)
        if min(costs) > 0:
            # Energies vary by factors: the mean's error on the log scale, never below 0.
            logs = np.log(costs)
            error = float(np.std(logs, ddof=1)) / math.sqrt(len(costs))
            # t's heavy tail with few draws can overflow: an infinite cost never pays back,
            # which the quantiles below read as an open top.
            with np.errstate(over="ignore"):
                cost_draws = cost * np.exp(error * noise)
        else:
            error = float(np.std(costs, ddof=1)) / math.sqrt(len(costs))
            cost_draws = np.maximum(cost + error * noise, 0.0)
    savings = -change_draws * base_draws
    with np.errstate(divide="ignore"):
        paybacks = np.where(savings > 0, cost_draws / np.where(savings > 0, savings, 1.0), np.inf)
    tail = (1.0 - CONFIDENCE) / 2.0
    # No interpolation: draws without a saving are infinite paybacks.
    low, high = (float(v) for v in np.quantile(paybacks, [tail, 1.0 - tail], method="inverted_cdf"))
    saving_low, saving_high = (float(v) for v in np.quantile(savings, [tail, 1.0 - tail]))
    if tokens is not None:
        low, high = min(low, tokens), max(high, tokens)
    # Open or bounded is the change's interval's to say: a positive baseline and cost never turn
    # a measurable saving into a loss, and a saving that may be 0 leaves the top open.
    open_top = saving[1] <= 0 or not math.isfinite(high)
    return Payback(
        cost,
        (saving[0], min(saving_low, saving[0]), max(saving_high, saving[0])),
        tokens=tokens,
        tokens_low=low if math.isfinite(low) else cost / saving[2],
        tokens_high=None if open_top else high,
        method="monte-carlo",
        cost_draws=len(costs),
        unit=unit,
    )


def _interval_width(interval: Interval) -> float:
    return (
        float(interval.high - interval.low) if math.isfinite(interval.high - interval.low) else 0.0
    )


def _log_draws(rng: np.random.Generator, interval: Interval, shift: float) -> np.ndarray:
    """Draws of ``log(shift + x)`` for an interval of ``x`` (a split scale when asymmetric).

    Student's t with ``count - 1`` degrees of freedom when the interval has a count of at least
    2, else the normal distribution; each side's scale puts its bound at the ``CONFIDENCE``
    quantile.
    """
    count = int(interval.count)
    df = count - 1 if count >= 2 else None
    tail = 0.5 + CONFIDENCE / 2.0
    quantile = float(sps.t.ppf(tail, df) if df else sps.norm.ppf(tail))
    floor = 1e-12 - shift  # keeps log(shift + x) finite
    mid = math.log(shift + max(interval.median, floor))
    below = (mid - math.log(shift + max(min(interval.low, interval.median), floor))) / quantile
    above = (math.log(shift + max(interval.high, interval.median, floor)) - mid) / quantile
    noise = (
        sps.t.rvs(df, size=MONTE_CARLO_DRAWS, random_state=rng)
        if df
        else rng.standard_normal(MONTE_CARLO_DRAWS)
    )
    return mid + np.where(noise < 0, below, above) * noise


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
