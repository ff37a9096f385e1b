"""Summary statistics of repeated and paired measurements, from ``scipy.stats``.

Every figure greenprune shows is an :class:`~greenprune.api.common.v1.energy_pb2.Interval`: a point
estimate (``median``) with two-sided bounds, the number of values behind it and the method:

* :func:`interval`: one configuration's repeats; the distribution-free interval for the median
  from order statistics, or Student's t interval of the mean when too few values exist for one.
* :func:`paired_ratio_change`: the relative change of one configuration against a baseline
  measured in the same rounds: Student's t interval of the mean log ratio over rounds, back
  transformed (``exp(mean log(b/a)) - 1``); drift shared by both members of a round cancels.
* :func:`paired_difference`: the difference of per-item outcomes (documents scored by both
  checkpoints): a bootstrap over items (``scipy.stats.bootstrap`` on the per-item
  differences) of the mean difference.

Verdicts on these changes (lower, higher, equivalent, inconclusive) are
``greenprune.core.verdicts``'.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from greenprune.api.common.v1.energy_pb2 import Interval

CONFIDENCE = 0.95
"""The confidence level of every interval greenprune reports."""

BOOTSTRAP_RESAMPLES = 4000
"""Resamples of the paired bootstrap (scipy's default is 9999; 4000 keeps its Monte Carlo error
well below a tenth of the interval's width on hundreds of items)."""


def _finite(values: Sequence[float], what: str) -> list[float]:
    data = [float(v) for v in values]
    if not data:
        raise ValueError(f"{what} needs at least one value")
    if not all(math.isfinite(v) for v in data):
        raise ValueError(f"{what} needs finite values")
    return data


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Summarise repeated measurements as their median and a confidence interval.

    The interval is the distribution-free one for the median, ``[x_(k), x_(n+1-k)]`` with the
    largest ``k`` whose binomial coverage ``1 - 2 P(Binomial(n, 1/2) <= k - 1)`` reaches
    ``confidence``. With too few values for any such pair (at 95%: fewer than 6), Student's t
    interval of the mean is used instead. The bounds are widened to include the median.

    Args:
        values: The measurements, at least one, all finite.
        confidence: Two-sided confidence level, strictly between 0 and 1.

    Returns:
        The median with its interval, the count and the method name.

    Raises:
        ValueError: If ``values`` is empty or not finite, or ``confidence`` is out of range.
    """
    data = sorted(_finite(values, "interval()"))
    _check_confidence(confidence)
    n = len(data)
    median = statistics.median(data)
    if n == 1:
        return Interval(median=median, low=median, high=median, count=1, method="single-value")
    k = _order_statistic_rank(n, confidence)
    if k is not None:
        low, high, method = data[k - 1], data[n - k], "order-statistic-median"
    else:
        mean, spread = _mean_and_stdev(data)
        half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * spread / math.sqrt(n)
        low, high, method = mean - half, mean + half, "student-t-mean"
    return Interval(
        median=median, low=min(low, median), high=max(high, median), count=n, method=method
    )


def _mean_and_stdev(data: list[float]) -> tuple[float, float]:
    """The mean and sample standard deviation of finite values, never overflowing on the way.

    Values whose sums overflow ``fsum`` (``1e308`` twice) are scaled by their largest magnitude
    first; a result beyond the float range is infinite rather than an error.
    """
    try:
        return statistics.fmean(data), statistics.stdev(data)
    except OverflowError:
        scale = max(abs(v) for v in data)
        scaled = [v / scale for v in data]
        return statistics.fmean(scaled) * scale, statistics.stdev(scaled) * scale


def _order_statistic_rank(n: int, confidence: float) -> int | None:
    """Largest k with P(x_(k) <= median <= x_(n+1-k)) >= confidence, or None if none does."""
    ks = np.arange(1, (n + 1) // 2 + 1)
    coverage = 1.0 - 2.0 * sps.binom.cdf(ks - 1, n, 0.5)
    reaching = ks[coverage >= confidence]
    return int(reaching.max()) if reaching.size else None


def paired_ratio_change(
    baseline: Sequence[float], other: Sequence[float], confidence: float = CONFIDENCE
) -> Interval:
    """Relative change ``other / baseline - 1`` from values paired by round, with its interval.

    Args:
        baseline: The baseline's value in each round (positive).
        other: The other configuration's value in the same rounds (positive).
        confidence: Two-sided confidence level.

    Returns:
        The geometric-mean ratio minus one, and Student's t interval of the mean log ratio,
        back-transformed. ``count`` is the number of rounds; one round gives a zero-width
        interval named ``single-round``.

    Raises:
        ValueError: On unequal lengths, no rounds, or a value that is not positive and finite.
    """
    base, new = _finite(baseline, "paired_ratio_change()"), _finite(other, "paired_ratio_change()")
    _check_confidence(confidence)
    if len(base) != len(new):
        raise ValueError(f"paired values need equal lengths, got {len(base)} and {len(new)}")
    if min(base + new) <= 0.0:
        raise ValueError("paired_ratio_change() needs positive values")
    logs = np.log(np.asarray(new)) - np.log(np.asarray(base))
    mean = float(logs.mean())
    n = len(logs)
    if n == 1:
        change = math.expm1(mean)
        return Interval(median=change, low=change, high=change, count=1, method="single-round")
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1) * logs.std(ddof=1) / math.sqrt(n))
    return Interval(
        median=math.expm1(mean),
        low=math.expm1(mean - half),
        high=math.expm1(mean + half),
        count=n,
        method="paired-t-log-ratio",
    )


def paired_difference(
    baseline: Sequence[float],
    other: Sequence[float],
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Mean difference ``other - baseline`` of per-item outcomes, with a paired bootstrap interval.

    Args:
        baseline: Each item's outcome under the baseline (e.g. 1.0 correct, 0.0 wrong).
        other: The same items' outcomes under the other configuration, in the same order.
        confidence: Two-sided confidence level.
        seed: Seed of the bootstrap's resampling (the result is deterministic for a seed).

    Returns:
        The mean difference with a percentile bootstrap interval over items. When every item's
        difference is the same, the interval is that value (method ``identical-differences``).

    Raises:
        ValueError: On unequal lengths, no items, or non-finite values.
    """
    base, new = _finite(baseline, "paired_difference()"), _finite(other, "paired_difference()")
    _check_confidence(confidence)
    if len(base) != len(new):
        raise ValueError(f"paired values need equal lengths, got {len(base)} and {len(new)}")
    diffs = np.asarray(new) - np.asarray(base)
    mean = float(diffs.mean())
    if np.all(diffs == diffs[0]):
        return Interval(
            median=mean, low=mean, high=mean, count=len(diffs), method="identical-differences"
        )
    result = sps.bootstrap(
        (diffs,),
        np.mean,
        confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(
        median=mean,
        low=min(float(low), mean),
        high=max(float(high), mean),
        count=len(diffs),
        method="paired-bootstrap",
    )
