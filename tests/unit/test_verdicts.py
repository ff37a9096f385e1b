"""The four verdicts, small samples and families (``greenprune.core.verdicts``).

Synthetic measurements with known truth: A/A replications, a family with one real difference,
documents that all agree, too few rounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from greenprune.core import findings, verdicts

DECIDED = (verdicts.LOWER, verdicts.HIGHER)


def _rounds(rng: np.random.Generator, change: float, rounds: int = 8) -> tuple[list, list]:
    """J/token of a baseline and another configuration over ``rounds`` interleaved rounds.

    Both share each round's drift (x0.8 to x1.25) and carry their own 2% noise; the other
    costs ``1 + change`` times the baseline.
    """
    drift = rng.uniform(0.8, 1.25, rounds)
    base = 1e-3 * drift * rng.lognormal(0.0, 0.02, rounds)
    other = 1e-3 * (1 + change) * drift * rng.lognormal(0.0, 0.02, rounds)
    return list(base), list(other)


def _a_a(seed: int, margin: float, kind: str) -> dict:
    """One A/A replication of ``kind``.

    ``energy``: 8 rounds; ``accuracy``: 400 documents scored twice, 3% of answers flipped at
    random each time.
    """
    rng = np.random.default_rng(seed)
    if kind == "energy":
        base, other = _rounds(rng, 0.0)
        return findings.change_fields(verdicts.ratio_test(base, other, margin), relative=True)
    truth = rng.random(400) < 0.7
    first, second = (truth ^ (rng.random(400) < 0.03) for _ in range(2))
    test = verdicts.scores_test(first.astype(float), second.astype(float), margin)
    return findings.change_fields(test, relative=False)


def test_a_a_comparisons_are_lower_or_higher_in_at_most_5_percent() -> None:
    # Each test alone at level 0.05: over 600 (300) replications the rate stays within Monte Carlo
    # error (2.5 standard errors) of 5%.
    for kind, count in (("energy", 600), ("accuracy", 300)):
        rate = np.mean([_a_a(seed, 0.05, kind)["verdict"] in DECIDED for seed in range(count)])
        assert rate <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / count), kind


def test_a_a_families_of_20_seeds_are_rarely_lower_or_higher_and_mostly_equivalent() -> None:
    # 20 A/A replications judged as one family (Holm): the chance that any of them reads lower
    # or higher stays at 5% (over 30 such families, within 2.5 standard errors), and with a 5%
    # margin most read equivalent.
    families, equivalent = [], []
    for family in range(30):
        changes = [_a_a(20 * family + seed, 0.05, "energy") for seed in range(20)]
        findings.judge_family(changes, verdicts.SECONDARY, "holm")
        words = [change["verdict"] for change in changes]
        families.append(any(word in DECIDED for word in words))
        equivalent.append(words.count(verdicts.EQUIVALENT) / 20)
    assert np.mean(families) <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / 30)
    assert np.mean(equivalent) >= 0.9
    accuracy = [_a_a(seed, 0.05, "accuracy") for seed in range(20)]
    findings.judge_family(accuracy, verdicts.SECONDARY, "holm")
    assert not any(change["verdict"] in DECIDED for change in accuracy)
    assert [c["verdict"] for c in accuracy].count(verdicts.EQUIVALENT) >= 15
    # A margin narrower than the noise: never equivalent.
    narrow = [_a_a(seed, 0.002, "energy") for seed in range(20)]
    findings.judge_family(narrow, verdicts.SECONDARY, "holm")
    assert verdicts.EQUIVALENT not in {change["verdict"] for change in narrow}


def test_a_family_of_ten_keeps_its_one_real_difference_and_drops_the_nulls() -> None:
    rng = np.random.default_rng(7)
    changes = []
    for index in range(10):
        base, other = _rounds(rng, -0.2 if index == 3 else 0.0)
        changes.append(
            findings.change_fields(verdicts.ratio_test(base, other, 0.03), relative=True)
        )
    findings.judge_family(changes, verdicts.PRIMARY, "holm")
    words = [change["verdict"] for change in changes]
    assert words[3] == verdicts.LOWER
    assert not any(word in DECIDED for i, word in enumerate(words) if i != 3)
    assert {change["family_size"] for change in changes} == {10}
    assert changes[3]["text"].startswith("lower: \u22121")  # about -20%
    text = findings.families_text(
        (change["family"], change["family_size"], change["adjustment"]) for change in changes
    )
    assert text == "primary family of 10, Holm"


def test_the_adjustment_drops_a_difference_one_test_alone_would_call() -> None:
    # p = 0.03 alone is "lower"; among ten with Holm (0.03 x 9 > 0.05) it is not.
    p_differences = [0.001, 0.03, *[0.6] * 8]
    p_equivalences = [1.0] * 10
    estimates = [-0.2, -0.05, *[0.01] * 8]
    alone = verdicts.judge(estimates, p_differences, p_equivalences, "none")
    holm = verdicts.judge(estimates, p_differences, p_equivalences, "holm")
    bh = verdicts.judge(estimates, p_differences, p_equivalences, "bh")
    assert alone[:2] == [verdicts.LOWER, verdicts.LOWER]
    assert holm[:2] == [verdicts.LOWER, verdicts.INCONCLUSIVE]
    assert bh[0] == verdicts.LOWER
    ps = np.random.default_rng(1).random(12) ** 3
    for name, method in (("holm", "holm"), ("bh", "fdr_bh")):
        expected = multipletests(ps, method=method)[1]
        assert verdicts.adjust(list(ps), name) == pytest.approx(list(expected))
    with pytest.raises(ValueError) as caught:
        verdicts.adjust([0.1], "bonferroni-ish")
    assert str(caught.value) == "unknown adjustment 'bonferroni-ish' (known: holm, bh, none)"


def test_documents_that_all_agree_keep_an_interval_of_some_width() -> None:
    scores = [1.0] * 35 + [0.0] * 15
    test = verdicts.scores_test(scores, list(scores), 0.01)
    z2 = 1.959964**2
    assert test.interval.low == pytest.approx(-z2 / (50 + z2), rel=1e-4)
    assert test.interval.high == pytest.approx(z2 / (50 + z2), rel=1e-4)
    assert test.interval.low < 0 < test.interval.high
    # 50 documents cannot tell a change of a few points: not lower, not equivalent at 1 point.
    assert verdicts.verdict(0.0, test.p_difference, test.p_equivalence) == verdicts.INCONCLUSIVE


def test_a_paired_difference_reads_from_mcnemar_and_the_score_interval() -> None:
    # 10 documents lost, 2 gained, of 100: McNemar's exact test, 2 P(Binomial(12, 1/2) <= 2).
    base = [1.0] * 10 + [0.0] * 2 + [1.0] * 60 + [0.0] * 28
    other = [0.0] * 10 + [1.0] * 2 + [1.0] * 60 + [0.0] * 28
    test = verdicts.scores_test(base, other, 0.01)
    assert test.p_difference == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert test.interval.median == pytest.approx(-0.08)
    assert test.interval.low < -0.08 < test.interval.high < 0
    assert verdicts.verdict(-0.08, test.p_difference, test.p_equivalence) == verdicts.LOWER


@pytest.mark.parametrize("rounds", [1, 2])
def test_fewer_than_three_rounds_are_inconclusive(rounds: int) -> None:
    # Even a large, consistent saving: one or two rounds never make a verdict.
    test = verdicts.ratio_test([1e-3] * rounds, [0.5e-3] * rounds, 0.03)
    fields = findings.change_fields(test, relative=True)
    assert fields["verdict"] == verdicts.INCONCLUSIVE
    assert fields["low"] is None and fields["high"] is None
    assert fields["text"] == f"inconclusive: too few rounds ({rounds} < 3)"
    assert verdicts.ratio_test([1e-3] * 3, [0.5e-3] * 3, 0.03).interval.count == 3


def test_margins_are_read_in_the_change_unit() -> None:
    margins = verdicts.Margins(accuracy_points=2.0, energy_relative=0.05)
    assert margins.of(relative=False) == pytest.approx(0.02)
    assert margins.of(relative=True) == pytest.approx(0.05)
    assert verdicts.Margins(1.0, 0.03) == verdicts.DEFAULT_MARGINS
