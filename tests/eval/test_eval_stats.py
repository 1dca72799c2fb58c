"""Bootstrap intervals: hand-computed cases, pairing, determinism."""

import math

import numpy as np
import pytest

from ctxsynth.eval.stats import bootstrap, paired_difference


def test_constant_scores_have_a_point_interval():
    est = bootstrap([1.0] * 7)
    assert (est.mean, est.low, est.high, est.n) == (1.0, 1.0, 1.0, 7)


def test_two_items_interval_spans_the_resample_means():
    # resample means of [0, 1] are 0 (p 1/4), 0.5 (p 1/2), 1 (p 1/4): the 2.5% and 97.5% points are 0 and 1
    est = bootstrap([0.0, 1.0])
    assert est.mean == 0.5 and est.low == 0.0 and est.high == 1.0


def test_bernoulli_interval_matches_the_normal_approximation():
    scores = [1.0] * 50 + [0.0] * 50  # p = 0.5, n = 100: 1.96 * sqrt(.25 / 100) = 0.098
    est = bootstrap(scores)
    assert est.mean == 0.5
    assert est.high - est.mean == pytest.approx(0.098, abs=0.012)
    assert est.mean - est.low == pytest.approx(0.098, abs=0.012)


def test_same_inputs_same_bounds():
    rng = np.random.default_rng(3)
    scores = rng.random(40).tolist()
    assert bootstrap(scores) == bootstrap(scores)


def test_paired_difference_is_b_minus_a_and_tighter_than_unpaired():
    rng = np.random.default_rng(0)
    base = {f"i{k}": float(v) for k, v in enumerate(rng.random(200))}
    tuned = {k: min(1.0, v + 0.05) for k, v in base.items()}  # every item a little better
    diff = paired_difference(base, tuned)
    assert diff.mean == pytest.approx(np.mean([tuned[k] - base[k] for k in base]))
    assert diff.excludes_zero() and diff.low > 0
    unpaired_width = bootstrap(list(tuned.values())).high - bootstrap(list(tuned.values())).low
    assert diff.high - diff.low < unpaired_width / 3


def test_identical_runs_differ_by_exactly_zero():
    a = {"x": 1.0, "y": 0.0, "z": 0.5}
    d = paired_difference(a, dict(a))
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0) and not d.excludes_zero()


def test_unmatched_items_are_an_error():
    with pytest.raises(ValueError, match="different items"):
        paired_difference({"a": 1.0}, {"b": 1.0})


def test_format_scales_to_percent():
    assert bootstrap([0.0, 1.0]).format() == "50.0 [0.0, 100.0]"


def test_grouped_auc_counts_wins_and_half_ties_by_hand() -> None:
    from ctxsynth.eval.stats import grouped_auc

    # positives 1, 2, 3 vs negatives 0, 2, 5: wins 1+1.5+2 = 4.5 of 9 pairs
    est = grouped_auc([1, 2, 3], [0, 1, 2], [0, 2, 5], [0, 1, 2], resamples=500)
    assert est.mean == 0.5 and est.n == 3 and 0.0 <= est.low <= 0.5 <= est.high <= 1.0
    # perfect separation: every resample is 1.0, so the interval collapses
    sure = grouped_auc([5, 6], [0, 1], [1, 2, 3, 4], [0, 0, 1, 1], resamples=500)
    assert (sure.mean, sure.low, sure.high, sure.n) == (1.0, 1.0, 1.0, 2)


def test_grouped_auc_difference_is_paired_by_hand() -> None:
    from ctxsynth.eval.stats import grouped_auc_difference

    # a: 4.5/9 (above); b: negatives 0, 1, 0 -> 2.5 + 3 + 3 = 8.5/9; difference 4/9
    diff = grouped_auc_difference(([1, 2, 3], [0, 2, 5]), ([1, 2, 3], [0, 1, 0]), [0, 1, 2], [0, 1, 2], resamples=500)
    assert diff.mean == pytest.approx(4 / 9) and diff.low <= diff.mean <= diff.high
    same = grouped_auc_difference(([1, 2], [0, 3]), ([1, 2], [0, 3]), [0, 1], [0, 1], resamples=200)
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)  # identical scores: zero in every resample


def test_spearman_and_average_ranks_by_hand() -> None:
    from ctxsynth.eval.stats import average_ranks, spearman

    assert average_ranks([10, 30, 20, 30]).tolist() == [1.0, 3.5, 2.0, 3.5]
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) vs (2, 1, 4, 3): d = (-1, 1, -1, 1), rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
