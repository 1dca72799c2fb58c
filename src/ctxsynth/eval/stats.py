"""Intervals for evaluation numbers: item bootstrap for one score, paired bootstrap for a difference.

Every experimental number ctxsynth reports carries n and a 95% interval. Scores are per-item values
in [0, 1] (exact match, F1, the share of needles found); a run's score is their mean. Two runs on
the same items are compared item by item: the paired bootstrap resamples items once for both runs,
so the interval of the difference is much tighter than two separate intervals would suggest.
Percentile intervals, 10,000 resamples, a fixed seed: the same inputs always give the same bounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval, on the scale of the inputs (x100 for percentages)."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.mean * scale)} [{f.format(self.low * scale)}, {f.format(self.high * scale)}]"


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _estimate(values: np.ndarray, idx: np.ndarray, level: float) -> Estimate:
    means = values[idx].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(values.mean()), float(low), float(high), int(values.size))


def bootstrap(scores: Sequence[float], resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of per-item scores with a percentile bootstrap interval over items."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap of no items")
    return _estimate(values, _indices(values.size, resamples, seed), level)


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], resamples: int = RESAMPLES,
                      seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of b - a over the items both runs scored (matched by id), with a paired bootstrap
    interval. Items only one run has are an error: a difference over unequal sets is not paired."""
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise ValueError(f"paired comparison over different items ({len(only)} unmatched, e.g. {only[:3]})")
    ids = sorted(a)
    diffs = np.asarray([b[i] - a[i] for i in ids], dtype=float)
    if diffs.size == 0:
        raise ValueError("paired bootstrap of no items")
    return _estimate(diffs, _indices(diffs.size, resamples, seed), level)


def _pair_wins(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """1 where positive > negative, 0.5 on a tie, 0 otherwise (positives x negatives)."""
    return (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])


def _group_matrix(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """One-hot rows: item i belongs to group groups[i] (items x groups)."""
    onehot = np.zeros((groups.size, n_groups))
    onehot[np.arange(groups.size), groups] = 1.0
    return onehot


def grouped_auc(positives: Sequence[float], positive_groups: Sequence[int], negatives: Sequence[float],
                negative_groups: Sequence[int], resamples: int = RESAMPLES, seed: int = 0,
                level: float = 0.95) -> Estimate:
    """AUC = P(positive > negative) + 0.5 P(tie) over all positive x negative pairs (Mann-Whitney),
    with a bootstrap interval that resamples groups (e.g. question-answer pairs), each bringing all
    its positives and negatives: scores of one group are not independent, so groups are the unit."""
    return _grouped_aucs([positives], positive_groups, [negatives], negative_groups, resamples, seed, level)[0]


def grouped_auc_difference(scores_a: tuple[Sequence[float], Sequence[float]],
                           scores_b: tuple[Sequence[float], Sequence[float]], positive_groups: Sequence[int],
                           negative_groups: Sequence[int], resamples: int = RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> Estimate:
    """AUC of score b minus AUC of score a, each given as (positives, negatives) over the same items
    and groups, with a paired bootstrap interval (the same resampled groups for both)."""
    return _grouped_aucs([scores_a[0], scores_b[0]], positive_groups, [scores_a[1], scores_b[1]],
                         negative_groups, resamples, seed, level, difference=True)[1]


def _grouped_aucs(positives: list[Sequence[float]], positive_groups: Sequence[int], negatives: list[Sequence[float]],
                  negative_groups: Sequence[int], resamples: int, seed: int, level: float,
                  difference: bool = False) -> list[Estimate]:
    pg, ng = np.asarray(positive_groups, dtype=int), np.asarray(negative_groups, dtype=int)
    if pg.size == 0 or ng.size == 0:
        raise ValueError("AUC needs at least one positive and one negative")
    labels = np.unique(np.concatenate([pg, ng]))
    index = {g: i for i, g in enumerate(labels.tolist())}
    pg, ng = np.asarray([index[g] for g in pg.tolist()]), np.asarray([index[g] for g in ng.tolist()])
    k = labels.size
    pos_onehot, neg_onehot = _group_matrix(pg, k), _group_matrix(ng, k)
    counts = np.stack([np.bincount(row, minlength=k) for row in _indices(k, resamples, seed)]).astype(float)
    denominator = (counts @ pos_onehot.sum(0)) * (counts @ neg_onehot.sum(0))
    estimates, draws = [], []
    for pos, neg in zip(positives, negatives, strict=True):
        wins = _pair_wins(np.asarray(pos, dtype=float), np.asarray(neg, dtype=float))
        by_group = pos_onehot.T @ wins @ neg_onehot  # groups x groups: wins of group a's positives over b's negatives
        point = float(by_group.sum() / (pg.size * ng.size))
        with np.errstate(invalid="ignore", divide="ignore"):
            draw = ((counts @ by_group) * counts).sum(1) / denominator
        estimates.append(point)
        draws.append(draw)
    if difference:
        estimates, draws = [estimates[0], estimates[1] - estimates[0]], [draws[0], draws[1] - draws[0]]
    tail = (1.0 - level) / 2 * 100
    out = []
    for point, draw in zip(estimates, draws, strict=True):
        low, high = np.nanpercentile(draw, [tail, 100 - tail])
        out.append(Estimate(point, float(low), float(high), k))
    return out


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(1, x.size + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's r of the average ranks); nan when a side is constant."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman needs two sequences of the same length, at least 2")
    ra, rb = average_ranks(a) - (len(a) + 1) / 2, average_ranks(b) - (len(b) + 1) / 2
    denominator = float(np.sqrt((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / denominator) if denominator else float("nan")
