"""The analysis rules of greenprune that are arithmetic on figures, written once.

The ResultsService's views apply them (``results_service``); ``greenprune report`` and the app
only render what the views computed, with the wording defined here.

* **Baseline and headline metric** are decided where the store reads its configurations: the
  ``configurations`` SQL of ``results_service/views.py`` (one baseline per model in an
  experiment: its uncompressed configuration; one headline metric per task: the first of
  :data:`ACCURACY_METRICS`, else of :data:`PERPLEXITY_METRICS`, else the first reported).
* **Relative change** (:func:`relative_change`): ``other / reference - 1``.
* **Change against another configuration**: energy as a relative change, paired by profile
  round (:func:`energy_change_paired`), and accuracy as a difference in points, paired by
  document (:func:`accuracy_change`): both are tests of ``greenprune.core.verdicts`` and end in
  a verdict (lower, higher, equivalent within the experiment's margin, inconclusive), adjusted
  within its family (:func:`judge_family`). Energies measured apart, not in interleaved rounds,
  get the conservative interval of the two intervals' opposite ends
  (:func:`energy_change_unpaired`) and no verdict. :func:`describe_change` writes them all.
* **A mean of independent estimates** (:func:`stderr_of_mean`): ``sqrt(sum se^2) / n``.
* **Pareto front** (:func:`pareto_mask`): the points no other point of their group beats on
  both cost (lower) and quality (higher); :func:`front_neighbours` pairs each point of a front
  with its cheaper neighbour, so that each step along the front carries its verdicts.
* **Net energy that cannot be told from idle** (:func:`above_idle`): an interval whose lower
  bound is not above 0.
* **Realization ratio** (:func:`realization_ratio`): the measured saving (minus the relative
  change of J/token) over the share of the baseline's MACs the kernel path skips; a path that
  skips none (zeroed weights on dense kernels) has none, and :func:`kernel_note` says up front
  that no saving is expected and whether the measurement confirms it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import pandas as pd

from greenprune.api.common.v1.energy_pb2 import Interval
from greenprune.core import verdicts

ACCURACY_METRICS: tuple[str, ...] = ("acc", "acc_norm")
"""Metrics that are accuracies, in order of preference for a task's headline metric."""

PERPLEXITY_METRICS: tuple[str, ...] = ("word_perplexity", "byte_perplexity", "bits_per_byte")
"""Perplexity-like metrics (lower is better), in order of preference; so is any metric whose
name contains "perplexity"."""

BASELINE_FAMILY = "baseline"
"""The method family of an uncompressed configuration (nothing removed, nothing quantized)."""

PROFILE_PHASE = "prefill"
"""The profile phase that stands for a checkpoint's energy (lm-eval scores by prefill)."""

MINUS = "\u2212"
NO_PAIRED_DATA = "no paired data"
NO_VERDICT = "not interleaved: no verdict"
"""What a change of runs measured apart (not in interleaved rounds) says instead of a verdict."""
NOT_ABOVE_IDLE = "not distinguishable from idle"
NOT_ABOVE_IDLE_METHOD = "not-above-idle"
"""The method of an energy change whose windows' net energy was not above idle."""
NO_SAVING = "dense kernels: no saving expected"
"""What a checkpoint whose zeroed or quantized weights skip no work says before measuring."""
BASELINE_TEXT = "baseline"
"""What a change column says on the baseline's own row."""


def missing(value: object) -> bool:
    """Whether a value is absent: None or a missing value of pandas (NaN, NA, NaT)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def finite(value: object) -> bool:
    """Whether a value is present and a finite number."""
    if missing(value):
        return False
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def relative_change(value: object, reference: object) -> float | None:
    """The relative change ``value / reference - 1``.

    None unless both are finite and the reference is positive.
    """
    if not finite(value) or not finite(reference) or float(reference) <= 0:  # type: ignore[arg-type]
        return None
    return float(value) / float(reference) - 1.0  # type: ignore[arg-type]


def stderr_of_mean(stderrs: Iterable[object]) -> float | None:
    """The standard error of the mean of independent estimates: ``sqrt(sum se^2) / n``.

    None when there is none or one is missing (an unknown error makes the mean's unknown).
    """
    values = list(stderrs)
    if not values or not all(finite(value) for value in values):
        return None
    # hypot: the root of the sum of squares without overflowing on the way (1e200 squared)
    return math.hypot(*(float(value) for value in values)) / len(values)  # type: ignore[arg-type]


# Changes -----------------------------------------------------------------------------------


def energy_change_paired(
    baseline: Sequence[float], other: Sequence[float], margin: float
) -> verdicts.Test | None:
    """The relative change of ``other`` against ``baseline``, values paired by round.

    Returns None when no round has a positive value for both (nothing to pair).
    """
    pairs = [
        (float(b), float(o))
        for b, o in zip(baseline, other, strict=True)
        if finite(b) and finite(o) and b > 0 and o > 0
    ]
    if not pairs:
        return None
    return verdicts.ratio_test([b for b, _ in pairs], [o for _, o in pairs], margin)


def energy_change_unpaired(
    baseline: tuple[object, object, object], other: tuple[object, object, object]
) -> Interval | None:
    """The relative change of two energies measured apart, each as (median, low, high).

    The interval is conservative: the other's ends over the baseline's opposite ends (method
    ``interval-ends``). It has no verdict: the runs were not interleaved, so drift between
    them is not in the interval. A side measured in one repeat has no interval to widen: the
    change is then the bare ratio, method :data:`ONE_REPEAT`. None when a figure is missing or
    the baseline is not positive.
    """
    if not all(finite(value) for value in (*baseline, *other)):
        return None
    b_mid, b_low, b_high = (float(v) for v in baseline)  # type: ignore[arg-type]
    o_mid, o_low, o_high = (float(v) for v in other)  # type: ignore[arg-type]
    if b_mid <= 0 or b_low <= 0 or b_high <= 0:
        return None
    if b_low == b_high or o_low == o_high:  # a figure of one repeat has no interval
        change = o_mid / b_mid - 1.0
        return Interval(median=change, low=change, high=change, count=1, method=ONE_REPEAT)
    return Interval(
        median=o_mid / b_mid - 1.0,
        low=min(o_low / b_high - 1.0, o_mid / b_mid - 1.0),
        high=max(o_high / b_low - 1.0, o_mid / b_mid - 1.0),
        count=0,
        method="interval-ends",
    )


def accuracy_change(
    baseline_items: Mapping[Hashable, float],
    other_items: Mapping[Hashable, float],
    margin: float,
) -> verdicts.Test | None:
    """The difference ``other - baseline`` of per-document scores, paired by document id.

    The one accuracy rule of every view (``verdicts.scores_test``). Returns None when the
    two share no document (no paired data).
    """
    shared = sorted(set(baseline_items) & set(other_items), key=str)
    if not shared:
        return None
    return verdicts.scores_test(
        [baseline_items[doc] for doc in shared], [other_items[doc] for doc in shared], margin
    )


def _signed(value: float, scale: float, digits: int = 1) -> str:
    if math.isinf(value):
        return ("+" if value > 0 else MINUS) + "\u221e"
    return f"{value * scale:+.{digits}f}".replace("-", MINUS)


def format_change(change: Interval, *, relative: bool) -> str:
    """Writes a change with its interval: "−23.4% [−25.1, −21.0]" or "−3.2 pt [−5.0, −1.1]"."""
    unit = "%" if relative else " pt"
    return (
        f"{_signed(change.median, 100)}{unit} "
        f"[{_signed(change.low, 100)}, {_signed(change.high, 100)}]"
    )


def _has_interval(change: Interval | None) -> bool:
    return change is not None and (change.count != 0 or change.method == "interval-ends")


def describe_change(
    change: Interval | None,
    *,
    relative: bool,
    verdict: str | None = None,
    estimate: object = None,
) -> str:
    """The text every reader shows for a change against another configuration.

    Args:
        change: The change with its interval; None when there is no interval.
        relative: True for relative changes (energy, perplexity), False for accuracy points.
        verdict: The (family-adjusted) verdict; None for a change that has none.
        estimate: The bare point estimate to mention when there is no interval.

    Returns:
        "lower: −23.4% [−25.1, −21.0]", "inconclusive: −1.2% [−5.0, +3.0]", "inconclusive:
        too few rounds (2)", "−15.6% [−46.3, +59.5] (not interleaved: no verdict)", "+9.9%,
        one repeat: no interval (not interleaved: no verdict)", and "no
        paired data (−3.7 pt)" (or "no paired data") without an interval.
    """
    unit = "%" if relative else " pt"
    if not _has_interval(change):
        if not finite(estimate):
            return NO_PAIRED_DATA
        return f"{NO_PAIRED_DATA} ({_signed(float(estimate), 100)}{unit})"  # type: ignore[arg-type]
    assert change is not None
    if change.method in TOO_FEW:
        what = "rounds" if change.method == "too-few-rounds" else "documents"
        text = f"too few {what} ({change.count} < {verdicts.MIN_ROUNDS})"
    elif change.method == ONE_REPEAT:
        text = f"{_signed(change.median, 100)}{unit}, one repeat: no interval"
    else:
        text = format_change(change, relative=relative)
    if verdict is None:
        return f"{text} ({NO_VERDICT})"
    return f"{verdict}: {text}"


ONE_REPEAT = "one-repeat"
"""The method of a change between runs of which one was measured in a single repeat."""

TOO_FEW = ("too-few-rounds", "too-few-documents")
"""The methods of a change measured on too few rounds or documents for a verdict."""


def change_fields(
    test: verdicts.Test | None, *, relative: bool, estimate: object = None
) -> dict[str, object]:
    """The columns a tested change contributes to a table row (:data:`CHANGE_FIELDS`).

    The verdict is the unadjusted one; :func:`judge_family` adjusts it within its family.
    """
    if test is None:
        return interval_fields(None, relative=relative, estimate=estimate)
    change = test.interval
    word = verdicts.verdict(change.median, test.p_difference, test.p_equivalence)
    low = change.low if math.isfinite(change.low) else None
    high = change.high if math.isfinite(change.high) else None
    return {
        "estimate": change.median if finite(change.median) else estimate,
        "low": low,
        "high": high,
        "count": change.count,
        "method": change.method,
        "relative": relative,
        "verdict": word,
        "margin": test.margin,
        "p_difference": test.p_difference,
        "p_equivalence": test.p_equivalence,
        "family": None,
        "family_size": None,
        "adjustment": None,
        "text": describe_change(change, relative=relative, verdict=word),
    }


def interval_fields(
    change: Interval | None, *, relative: bool, estimate: object = None
) -> dict[str, object]:
    """The columns of a change that has no verdict (:data:`CHANGE_FIELDS`, ``verdict`` None).

    Used for an interval of runs that were not interleaved, or none at all.
    """
    present = _has_interval(change)
    return {
        "estimate": change.median if present else estimate,  # type: ignore[union-attr]
        "low": change.low if present else None,  # type: ignore[union-attr]
        "high": change.high if present else None,  # type: ignore[union-attr]
        "count": change.count if present else None,  # type: ignore[union-attr]
        "method": change.method if present else NO_PAIRED_DATA,  # type: ignore[union-attr]
        "relative": relative,
        "verdict": None,
        "margin": None,
        "p_difference": None,
        "p_equivalence": None,
        "family": None,
        "family_size": None,
        "adjustment": None,
        "text": describe_change(change, relative=relative, estimate=estimate),
    }


CHANGE_FIELDS: tuple[str, ...] = (
    "estimate",
    "low",
    "high",
    "count",
    "method",
    "relative",
    "verdict",
    "margin",
    "p_difference",
    "p_equivalence",
    "family",
    "family_size",
    "adjustment",
    "text",
)
"""The fields of a change in every view (:func:`change_fields`, :func:`interval_fields`)."""


def judge_family(changes: Sequence[dict[str, object]], family: str, adjustment: str) -> None:
    """Adjusts the verdicts of one family of changes in place, and names the family.

    Changes without a verdict (no interval, not interleaved) are left out of the family.
    Each judged change gets its adjusted ``verdict`` and ``text``, ``family``,
    ``family_size`` and ``adjustment``.
    """
    members = [change for change in changes if change.get("verdict") is not None]
    words = verdicts.judge(
        [float(m["estimate"]) if finite(m["estimate"]) else math.nan for m in members],  # type: ignore[arg-type]
        [float(m["p_difference"]) for m in members],  # type: ignore[arg-type]
        [float(m["p_equivalence"]) for m in members],  # type: ignore[arg-type]
        adjustment,
    )
    for member, word in zip(members, words, strict=True):
        interval = Interval(
            median=float(member["estimate"]) if finite(member["estimate"]) else math.nan,  # type: ignore[arg-type]
            low=float(member["low"]) if finite(member["low"]) else -math.inf,  # type: ignore[arg-type]
            high=float(member["high"]) if finite(member["high"]) else math.inf,  # type: ignore[arg-type]
            count=int(member["count"] or 0),  # type: ignore[arg-type]
            method=str(member["method"]),
        )
        if member["method"] == NOT_ABOVE_IDLE_METHOD:
            text = f"{word}: net energy {NOT_ABOVE_IDLE}"
        else:
            text = describe_change(interval, relative=bool(member["relative"]), verdict=word)
        member.update(
            verdict=word, family=family, family_size=len(members), adjustment=adjustment, text=text
        )


VERDICT_NOTE = (
    "lower or higher when the change differs from 0, equivalent when two one-sided tests put "
    "it inside \u00b1 the experiment's margin, else inconclusive (also with fewer than "
    f"{verdicts.MIN_ROUNDS} rounds); each verdict is adjusted within its family."
)
"""How every table explains its verdicts."""


def families_text(families: Iterable[tuple[object, object, object]]) -> str:
    """The families behind a table's verdicts: ``primary family of 6, Holm``, joined."""
    seen: dict[str, None] = {}
    for family, size, adjustment in families:
        if missing(family) or missing(size):
            continue
        text = verdicts.family_text(str(family), int(size), str(adjustment))  # type: ignore[call-overload]
        seen.setdefault(text, None)
    return "; ".join(seen) if seen else "no verdicts"


def margin_text(margins: Sequence[object], *, relative: bool) -> str:
    """The margin of a table's verdicts: ``, margin ±1.0 pt`` (empty when none)."""
    present = sorted({float(m) for m in margins if finite(m)})  # type: ignore[arg-type]
    if not present:
        return ""
    unit = "%" if relative else " pt"
    return ", margin " + " / ".join(f"\u00b1{m * 100:.1f}{unit}" for m in present)


def above_idle(low: object) -> bool | None:
    """Whether a net energy's interval lies above 0 (told apart from idle); None when unknown."""
    if not finite(low):
        return None
    return float(low) > 0.0  # type: ignore[arg-type]


def describe_energy(median: object, low: object, high: object) -> str:
    """Writes a net energy with its interval, or says that it cannot be told from idle."""
    if not finite(median):
        return "-"
    mid = float(median)  # type: ignore[arg-type]
    if not finite(low) or not finite(high):
        return f"{mid:.3g} J"
    bounds = f"{mid:.3g} J [{float(low):.3g}, {float(high):.3g}]"  # type: ignore[arg-type]
    return bounds if above_idle(low) else f"{NOT_ABOVE_IDLE} ({bounds})"


# Pareto front ------------------------------------------------------------------------------


def pareto_mask(
    points: pd.DataFrame,
    x: str = "net_joules",
    y: str = "accuracy",
    groups: Sequence[str] = ("experiment", "task"),
) -> pd.Series:
    """Marks the points no other point of their group beats on both ``x`` (lower) and ``y``.

    Points with a missing ``x`` or ``y`` are never on the front.

    Args:
        points: One row per point.
        x: The cost column; lower is better.
        y: The quality column; higher is better.
        groups: Columns that split the points into separate fronts (absent ones are ignored).
    """
    mask = pd.Series(False, index=points.index)
    valid = points[points[x].notna() & points[y].notna()]
    keys = [column for column in groups if column in valid.columns]
    parts = valid.groupby(keys, dropna=False) if keys else [((), valid)]
    for _, part in parts:
        xs = part[x].to_numpy(dtype="float64")
        ys = part[y].to_numpy(dtype="float64")
        for index, px, py in zip(part.index, xs, ys, strict=True):
            beaten = (xs <= px) & (ys >= py) & ((xs < px) | (ys > py))
            mask.loc[index] = not beaten.any()
    return mask


def front_neighbours(
    points: pd.DataFrame,
    on_front: pd.Series,
    x: str = "net_joules",
    groups: Sequence[str] = ("experiment", "task"),
) -> pd.Series:
    """The index of each front point's neighbour on its front: the next cheaper point.

    The cheapest point of a front, and every point off the front, has no neighbour (None).
    The verdicts of the step from the neighbour to the point are the views' to give, with the
    change rules above.
    """
    neighbours = pd.Series([None] * len(points), index=points.index, dtype="object")
    front = points[on_front]
    keys = [column for column in groups if column in front.columns]
    parts = front.groupby(keys, dropna=False) if keys else [((), front)]
    for _, part in parts:
        ordered = list(part.sort_values(x, kind="stable").index)
        for previous, index in zip(ordered, ordered[1:], strict=False):
            neighbours.loc[index] = previous
    return neighbours


def share_removed(before: object, after: object) -> float | None:
    """The share of parameters removed, ``1 - after / before``; None when unknown."""
    if not finite(before) or not finite(after) or float(before) <= 0:  # type: ignore[arg-type]
        return None
    return 1.0 - float(after) / float(before)  # type: ignore[arg-type]


def ratio_text(ratio: object, removed_share: object) -> str:
    """Both ratios: "20% of prunable parameters = 8.3% of all parameters"."""
    if not finite(ratio):
        return "ratio unknown"
    text = f"{float(ratio):.0%} of prunable parameters"  # type: ignore[arg-type]
    if finite(removed_share):
        text += f" = {float(removed_share):.1%} of all parameters"  # type: ignore[arg-type]
    return text


def realization_ratio(estimate: object, macs_skipped_share: object) -> float | None:
    """The measured saving over the MACs skipped: 1 when the saving is all the skipped work.

    Args:
        estimate: The relative change of J/token against the baseline (negative: a saving).
        macs_skipped_share: The share of the baseline's MACs the kernel path skips.
    """
    if not finite(estimate) or not finite(macs_skipped_share):
        return None
    if float(macs_skipped_share) <= 0:  # type: ignore[arg-type]
        return None
    return -float(estimate) / float(macs_skipped_share)  # type: ignore[arg-type]


def kernel_note(
    kernel_path: object,
    macs_skipped_share: object,
    zeroed_share: object,
    *,
    verdict: str,
    estimate: object = None,
) -> str:
    """What a checkpoint's kernels could turn into saved work, and what was measured.

    "dense float32 multiplies the zeroed weights too: dense kernels: no saving expected;
    measured: equivalent (as expected)", or "skips 40% of the baseline's MACs; the measured
    saving realizes 62% of it".

    Args:
        kernel_path: The kernels the checkpoint ran on.
        macs_skipped_share: The share of the baseline's MACs that path skips.
        zeroed_share: The share of prunable weights the checkpoint zeroes.
        verdict: The energy change's verdict (``greenprune.core.verdicts``), adjusted.
        estimate: The relative change of J/token against the baseline.
    """
    if missing(kernel_path) or not str(kernel_path):
        return ""
    path = str(kernel_path)
    skipped = float(macs_skipped_share) if finite(macs_skipped_share) else 0.0  # type: ignore[arg-type]
    changed = verdict in (verdicts.LOWER, verdicts.HIGHER)
    if skipped <= 0:
        zeroed = finite(zeroed_share) and float(zeroed_share) > 0  # type: ignore[arg-type]
        if not zeroed:
            return f"{path}: skips no work"
        measured = f"{verdict}, not from skipped work" if changed else f"{verdict} (as expected)"
        return f"{path} multiplies the zeroed weights too: {NO_SAVING}; measured: {measured}"
    realized = realization_ratio(estimate, skipped)
    text = f"{path} skips {skipped:.0%} of the baseline's MACs"
    if realized is None or verdict != verdicts.LOWER:
        return f"{text}; measured: {verdict}"
    return f"{text}; the measured saving realizes {realized:.0%} of it"
