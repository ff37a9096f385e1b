"""The verdict on a change, written once: lower, higher, equivalent or inconclusive.

Every comparison greenprune shows (a configuration against its baseline, or two against each
other) is a paired test with two p-values:

* ``p_difference``: the two-sided test that the change is 0 (energy: Student's t on the log
  ratios of the rounds, ``scipy.stats.ttest_1samp``; accuracy of 0/1 scores: McNemar's exact
  test, ``statsmodels``; other per-document scores: the paired t test);
* ``p_equivalence``: two one-sided tests that the change lies inside ``± margin`` (TOST;
  energy and other scores: ``statsmodels``' ``ttost_paired``; 0/1 scores: the same score
  statistic at ``± margin``), the larger of the two one-sided p-values.

The comparisons of one **family** are adjusted together (:func:`adjust`: Holm by default, or
Benjamini-Hochberg with ``statsmodels.stats.multitest.multipletests``), and the adjusted
p-values give the verdict at level :data:`ALPHA` (:func:`verdict`):

* **lower** / **higher**: the change differs from 0, downwards or upwards;
* **equivalent**: both one-sided tests put the change inside ``± margin`` (at α = 0.05 this is
  the 90% interval lying inside the margin);
* **inconclusive**: neither, or fewer than :data:`MIN_ROUNDS` shared rounds.

A family is declared per experiment and model: the **primary** comparison (energy at the
profile's largest prefill batch and each task's headline accuracy, every compressed
configuration against the baseline) and the **secondary** one (every other difference).
Margins are declared in the experiment file (``margins:``), defaults :data:`DEFAULT_MARGINS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import limits
from greenprune.core.stats import CONFIDENCE

LOWER = "lower"
HIGHER = "higher"
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"
VERDICTS: tuple[str, ...] = (LOWER, HIGHER, EQUIVALENT, INCONCLUSIVE)
"""The four verdicts, in the order tables sort them."""

ALPHA = 1.0 - CONFIDENCE
"""The level of every test (the intervals shown are at ``CONFIDENCE``)."""

MIN_ROUNDS = 3
"""The fewest shared rounds (or documents) a comparison needs for any verdict but inconclusive."""

_MULTIPLETESTS_METHODS = {"holm": "holm", "bh": "fdr_bh", "none": "none"}
ADJUSTMENTS: dict[str, str] = {name: _MULTIPLETESTS_METHODS[name] for name in limits.ADJUSTMENTS}
"""Family adjustments by their experiment-file name (``limits.ADJUSTMENTS``): statsmodels
``multipletests`` methods."""

DEFAULT_ADJUSTMENT = limits.ADJUSTMENTS[0]

PRIMARY = "primary"
SECONDARY = "secondary"
PAIRWISE = "pairwise"
FRONT = "front steps"
"""Family names: the declared primary comparison, the rest against the baseline, pairs of
compressed configurations (method comparisons, the app's Compare page), and the steps along
Pareto fronts."""


@dataclass(frozen=True)
class Margins:
    """The equivalence margins of an experiment.

    Attributes:
        accuracy_points: Accuracy differences within ± this many points (1.0 = 0.01) are
            equivalent.
        energy_relative: Relative energy changes within ± this share (0.03 = 3%) are
            equivalent.
    """

    accuracy_points: float = 1.0
    energy_relative: float = 0.03

    def of(self, relative: bool) -> float:
        """The margin in the change's own unit: a share for relative changes, else a fraction."""
        return self.energy_relative if relative else self.accuracy_points / 100.0


DEFAULT_MARGINS = Margins()


@dataclass(frozen=True)
class Test:
    """A change with its interval and the two p-values its verdict is read from.

    Attributes:
        interval: The estimate and its ``CONFIDENCE`` interval (count: rounds or documents).
        p_difference: Two-sided p-value of "the change is 0"; 1.0 when untestable.
        p_equivalence: TOST p-value of "the change lies outside ± margin"; 1.0 when untestable.
        margin: The equivalence margin, in the change's unit.
    """

    interval: Interval
    p_difference: float
    p_equivalence: float
    margin: float


def _untestable(estimate: float, count: int, method: str, margin: float) -> Test:
    interval = Interval(median=estimate, low=-math.inf, high=math.inf, count=count, method=method)
    return Test(interval, 1.0, 1.0, margin)


def _p(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else 1.0


def ratio_test(baseline: Sequence[float], other: Sequence[float], margin: float) -> Test:
    """The relative change ``other / baseline - 1`` of values paired by round.

    Student's t on the log ratios; TOST against ``log(1 - margin)``, ``log(1 + margin)``.
    Fewer than :data:`MIN_ROUNDS` rounds give an unbounded interval (``too-few-rounds``).

    Raises:
        ValueError: On unequal lengths or values that are not positive and finite.
    """
    base = np.asarray(baseline, dtype="float64")
    new = np.asarray(other, dtype="float64")
    if base.shape != new.shape:
        raise ValueError(f"paired values need equal lengths, got {base.size} and {new.size}")
    if base.size and (not np.all(np.isfinite(base + new)) or min(base.min(), new.min()) <= 0):
        raise ValueError("ratio_test() needs positive finite values")
    logs = np.log(new) - np.log(base)
    n = int(logs.size)
    estimate = math.expm1(float(logs.mean())) if n else math.nan
    if n < MIN_ROUNDS:
        return _untestable(estimate, n, "too-few-rounds", margin)
    mean = float(logs.mean())
    spread = float(logs.std(ddof=1))
    if spread == 0.0:
        # Identical ratios in every round: the change is that ratio, without doubt.
        p_diff = 0.0 if mean != 0.0 else 1.0
        inside = abs(math.expm1(mean)) < margin
        interval = Interval(
            median=estimate, low=estimate, high=estimate, count=n, method="identical-ratios"
        )
        return Test(interval, p_diff, 0.0 if inside else 1.0, margin)
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2.0, n - 1)) * spread / math.sqrt(n)
    interval = Interval(
        median=estimate,
        low=math.expm1(mean - half),
        high=math.expm1(mean + half),
        count=n,
        method="paired-t-log-ratio",
    )
    p_diff = _p(sps.ttest_1samp(logs, 0.0).pvalue)
    low, high = math.log1p(-min(margin, 0.999999)), math.log1p(margin)
    p_equiv = _p(ttost_paired(np.log(new), np.log(base), low, high)[0])
    return Test(interval, p_diff, p_equiv, margin)


def _binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0.0) | (values == 1.0)))


def _tango_z(delta: float, gained: int, lost: int, n: int) -> float:
    """Tango's (1998) score statistic of "other - baseline = delta" for paired 0/1 outcomes.

    ``gained``: documents only the other got right; ``lost``: only the baseline got right.
    The nuisance is the restricted maximum-likelihood estimate of P(lost) under ``delta``.
    """
    a = 2.0 * n
    b = -gained - lost + (2.0 * n - gained + lost) * delta
    c = -lost * delta * (1.0 - delta)
    root = b * b - 4.0 * a * c
    q = (-b + math.sqrt(max(root, 0.0))) / (2.0 * a)
    variance = n * (2.0 * q + delta * (1.0 - delta))
    if variance <= 0.0:
        return 0.0 if gained - lost - n * delta == 0 else math.copysign(math.inf, gained - lost)
    return (gained - lost - n * delta) / math.sqrt(variance)


def _tango_interval(gained: int, lost: int, n: int) -> tuple[float, float]:
    """The score interval for a paired difference of proportions (Tango 1998), by root finding.

    It never collapses to one point: with no discordant document it is ``± z²/(n + z²)``.
    """
    z = float(sps.norm.ppf(0.5 + CONFIDENCE / 2.0))
    estimate = (gained - lost) / n
    edge = 1.0 - 1e-12

    def low_gap(delta: float) -> float:
        return _tango_z(delta, gained, lost, n) - z

    def high_gap(delta: float) -> float:
        return _tango_z(delta, gained, lost, n) + z

    low = -edge if low_gap(-edge) < 0 else optimize.brentq(low_gap, -edge, estimate)
    high = edge if high_gap(edge) > 0 else optimize.brentq(high_gap, estimate, edge)
    return float(low), float(high)


def scores_test(baseline: Sequence[float], other: Sequence[float], margin: float) -> Test:
    """The difference ``other - baseline`` of per-document scores paired by document.

    0/1 scores: Tango's score interval for paired proportions, McNemar's exact test for the
    difference and Tango's score statistic at ``± margin`` for equivalence. Other scores: the
    paired t interval, ``scipy.stats.ttest_rel`` and ``ttost_paired``. Fewer than
    :data:`MIN_ROUNDS` documents give an unbounded interval (``too-few-documents``).

    Raises:
        ValueError: On unequal lengths or values that are not finite.
    """
    base = np.asarray(baseline, dtype="float64")
    new = np.asarray(other, dtype="float64")
    if base.shape != new.shape:
        raise ValueError(f"paired values need equal lengths, got {base.size} and {new.size}")
    if not (np.all(np.isfinite(base)) and np.all(np.isfinite(new))):
        raise ValueError("scores_test() needs finite values")
    n = int(base.size)
    diffs = new - base
    estimate = float(diffs.mean()) if n else math.nan
    if n < MIN_ROUNDS:
        return _untestable(estimate, n, "too-few-documents", margin)
    if _binary(base) and _binary(new):
        gained, lost = int((diffs > 0).sum()), int((diffs < 0).sum())
        low, high = _tango_interval(gained, lost, n)
        normal = sps.norm
        # McNemar's exact test (the score test is liberal with few discordant documents).
        p_diff = _p(mcnemar([[0, lost], [gained, 0]], exact=True).pvalue)
        p_low = float(normal.sf(_tango_z(-margin, gained, lost, n)))
        p_high = float(normal.cdf(_tango_z(margin, gained, lost, n)))
        interval = Interval(
            median=estimate,
            low=min(low, estimate),
            high=max(high, estimate),
            count=n,
            method="paired-score-tango",
        )
        return Test(interval, p_diff, max(p_low, p_high), margin)
    spread = float(diffs.std(ddof=1))
    if spread == 0.0:
        interval = Interval(
            median=estimate, low=estimate, high=estimate, count=n, method="identical-differences"
        )
        return Test(
            interval, 0.0 if estimate else 1.0, 0.0 if abs(estimate) < margin else 1.0, margin
        )
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2.0, n - 1)) * spread / math.sqrt(n)
    interval = Interval(
        median=estimate, low=estimate - half, high=estimate + half, count=n, method="paired-t"
    )
    p_diff = _p(sps.ttest_rel(new, base).pvalue)
    p_equiv = _p(ttost_paired(new, base, -margin, margin)[0])
    return Test(interval, p_diff, p_equiv, margin)


BOOTSTRAP_RESAMPLES = 2000
"""The resamples of the two-stage bootstrap over pruning draws and documents."""


def draws_test(
    baseline: Sequence[float],
    draws: Sequence[Sequence[float]],
    margin: float,
    seed: int = 0,
) -> Test:
    """The difference ``draw - baseline`` of per-document scores over several pruning draws.

    Each draw is a checkpoint pruned with another calibration draw (``pruning.seeds``), scored
    on the same documents as the baseline. With one draw this is :func:`scores_test`. With
    more, the estimate is the mean over draws of the paired difference, and the interval covers
    both the documents and the draws: a two-stage bootstrap (draws resampled, then documents,
    the same documents for the baseline and every draw so that the pairing stays), seeded with
    ``seed``, percentile bounds, joined with the mean of the draws' own document intervals (so
    that draws that agree on every document never give [0, 0]). The p-values are the normal
    tests read from that interval (difference from 0; two one-sided tests at ``± margin``).

    Raises:
        ValueError: On no draw, unequal lengths or values that are not finite.
    """
    if not draws:
        raise ValueError("draws_test() needs at least one draw")
    if len(draws) == 1:
        return scores_test(baseline, draws[0], margin)
    singles = [scores_test(baseline, draw, margin) for draw in draws]
    base = np.asarray(baseline, dtype="float64")
    n = int(base.size)
    diffs = np.asarray(draws, dtype="float64") - base
    estimate = float(diffs.mean()) if n else math.nan
    if n < MIN_ROUNDS:
        return _untestable(estimate, n, "too-few-documents", margin)
    rng = np.random.default_rng(seed)
    count = len(draws)
    chosen_draws = rng.multinomial(count, [1.0 / count] * count, size=BOOTSTRAP_RESAMPLES)
    chosen_docs = rng.multinomial(n, [1.0 / n] * n, size=BOOTSTRAP_RESAMPLES)
    per_draw = diffs @ chosen_docs.T / n  # (draws, resamples): each draw's mean difference
    resampled = (chosen_draws.T * per_draw).sum(axis=0) / count
    tail = (1.0 - CONFIDENCE) / 2.0
    boot_low, boot_high = (float(v) for v in np.quantile(resampled, [tail, 1.0 - tail]))
    low = min(boot_low, float(np.mean([t.interval.low for t in singles])), estimate)
    high = max(boot_high, float(np.mean([t.interval.high for t in singles])), estimate)
    interval = Interval(
        median=estimate,
        low=low,
        high=high,
        count=n,
        method=f"two-stage-bootstrap-{count}-draws",
    )
    z = float(sps.norm.ppf(0.5 + CONFIDENCE / 2.0))
    below, above = (estimate - low) / z, (high - estimate) / z
    if below <= 0 or above <= 0:
        return Test(
            interval, 0.0 if estimate else 1.0, 0.0 if abs(estimate) < margin else 1.0, margin
        )
    toward_zero = below if estimate > 0 else above
    p_diff = float(2.0 * sps.norm.sf(abs(estimate) / toward_zero))
    p_low = float(sps.norm.sf((estimate + margin) / below))
    p_high = float(sps.norm.cdf((estimate - margin) / above))
    return Test(interval, p_diff, max(p_low, p_high), margin)


def adjust(p_values: Sequence[float], adjustment: str = DEFAULT_ADJUSTMENT) -> list[float]:
    """The p-values of one family adjusted with ``adjustment`` (a key of :data:`ADJUSTMENTS`).

    Benjamini-Hochberg is statsmodels' ``multipletests``. Holm's step-down adjustment,
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``, is the same formula written here, because
    ``multipletests`` runs ``gc.collect()`` on every Holm call (0.1 s in a loaded process,
    once per family and view); the tests check both agree.

    Raises:
        ValueError: On an unknown adjustment.
    """
    if adjustment not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {adjustment!r} (known: {', '.join(ADJUSTMENTS)})")
    values = np.asarray([_p(p) for p in p_values], dtype="float64")
    if not values.size or ADJUSTMENTS[adjustment] == "none":
        return [float(p) for p in values]
    if adjustment == "holm":
        order = np.argsort(values, kind="stable")
        steps = values[order] * np.arange(values.size, 0, -1)
        adjusted = np.empty_like(values)
        adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
        return [float(p) for p in adjusted]
    return [float(p) for p in multipletests(values, alpha=ALPHA, method=ADJUSTMENTS[adjustment])[1]]


def verdict(estimate: float, p_difference: float, p_equivalence: float) -> str:
    """The verdict of one (adjusted) comparison at level :data:`ALPHA`.

    A change that differs from 0 is lower or higher even when it also lies inside the margin.
    """
    if p_difference < ALPHA and math.isfinite(estimate) and estimate != 0.0:
        return LOWER if estimate < 0 else HIGHER
    if p_equivalence < ALPHA:
        return EQUIVALENT
    return INCONCLUSIVE


def judge(
    estimates: Sequence[float],
    p_differences: Sequence[float],
    p_equivalences: Sequence[float],
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> list[str]:
    """The verdicts of one family: both sets of p-values adjusted, then :func:`verdict`."""
    p_diff = adjust(p_differences, adjustment)
    p_equiv = adjust(p_equivalences, adjustment)
    return [verdict(e, d, q) for e, d, q in zip(estimates, p_diff, p_equiv, strict=True)]


def family_text(family: str, size: int, adjustment: str) -> str:
    """How a table names a family: ``primary family of 6, Holm``."""
    names = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no adjustment"}
    return f"{family} family of {size}, {names.get(adjustment, adjustment)}"
