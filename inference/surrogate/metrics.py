"""Distances between a reference sample and a generated one: separation power, KS, ROC AUC.

All take the reference (real) sample first. Finite samples of one and the same
distribution give positive values for the first two: the separation power of
two samples of sizes ``n`` and ``m`` histogrammed into ``b`` well-filled bins
averages about ``b (1/n + 1/m) / 4``, and the KS distance about ``0.87 sqrt(1/n + 1/m)``.
Compare against real-versus-real figures (``evaluate`` prints them) rather than zero.
"""

from __future__ import annotations

from typing import Union

import numpy as np

Bins = Union[int, np.ndarray]


def histogram_edges(reference: np.ndarray, bins: int = 50) -> np.ndarray:
    """``bins`` equal-width bins spanning the reference sample (one unit-wide bin if it is constant)."""
    reference = np.asarray(reference, dtype=np.float64)
    low, high = float(np.min(reference)), float(np.max(reference))
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def histogram_with_overflow(sample: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in ``edges``' bins with an underflow bin first and an overflow bin last."""
    sample = np.asarray(sample, dtype=np.float64).reshape(-1)
    inside, _ = np.histogram(sample, bins=edges)
    return np.concatenate([[np.sum(sample < edges[0])], inside, [np.sum(sample > edges[-1])]])


def separation_power_of_histograms(p: np.ndarray, q: np.ndarray) -> float:
    """``0.5 * sum (p - q)^2 / (p + q)`` of two histograms, each normalised to unit sum.

    0 for identical shapes, 1 for histograms with no bin in common; empty bins
    of both are skipped.
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in shape: {p.shape} and {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("cannot compare an empty histogram")
    p, q = p / p.sum(), q / q.sum()
    filled = (p + q) > 0
    return float(0.5 * np.sum((p[filled] - q[filled]) ** 2 / (p[filled] + q[filled])))


def separation_power(reference: np.ndarray, sample: np.ndarray, bins: Bins = 50) -> float:
    """Separation power of two samples histogrammed alike.

    Args:
        reference: the real sample; its range sets the bins when ``bins`` is a count.
        sample: the generated sample.
        bins: a number of equal-width bins over the reference's range, or the edges.
            Values outside the range land in an underflow or overflow bin, so
            tails count too.
    """
    edges = histogram_edges(reference, bins) if np.ndim(bins) == 0 else np.asarray(bins, dtype=np.float64)
    return separation_power_of_histograms(histogram_with_overflow(reference, edges),
                                          histogram_with_overflow(sample, edges))


def ks_distance(reference: np.ndarray, sample: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a = np.sort(np.asarray(reference, dtype=np.float64).reshape(-1))
    b = np.sort(np.asarray(sample, dtype=np.float64).reshape(-1))
    if not len(a) or not len(b):
        raise ValueError("cannot compare an empty sample")
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / len(a) - np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(gap)))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative.

    Ties count one half (the Mann-Whitney statistic with mid-ranks).

    Args:
        scores: (N,) classifier outputs, higher meaning more likely positive.
        labels: (N,) 1 for positives, 0 for negatives; both must occur.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"expected one label per score, got {labels.shape} labels for {scores.shape} scores")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        raise ValueError(f"ROC AUC needs both classes, got {positives} positives and {negatives} negatives")
    ranks = _mid_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def auc_standard_error(positives: int, negatives: int) -> float:
    """Standard deviation of the ROC AUC of an uninformative classifier (continuous scores)."""
    return float(np.sqrt((positives + negatives + 1) / (12.0 * positives * negatives)))


def _mid_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = (ends - (counts - 1) / 2.0)[inverse]
    return ranks

