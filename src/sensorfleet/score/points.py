"""Point-wise metrics: every reading counts once, whatever episode it belongs to.

Precision, recall and F1 of the flags; from scores, the ROC and
precision-recall curves, computed exactly from one descending sort (tied
scores move together, so a tie counts half in the ROC area), and the
threshold with the best F1. No scikit-learn needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import Bools, Floats, Ints


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1; None where undefined (nothing flagged, nothing to find)."""

    precision: float | None
    recall: float | None
    f1: float | None


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def f1_of(precision: float | None, recall: float | None) -> float | None:
    """The harmonic mean; 0 when either is 0, None when either is undefined otherwise."""
    if precision == 0 or recall == 0:
        return 0.0
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall)


def point_prf(actual: Bools, flagged: Bools) -> tuple[PRF, dict[str, int]]:
    """Point-wise precision, recall and F1, and the confusion counts behind them."""
    tp = int(np.count_nonzero(actual & flagged))
    fp = int(np.count_nonzero(flagged)) - tp
    fn = int(np.count_nonzero(actual)) - tp
    tn = len(actual) - tp - fp - fn
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return PRF(precision, recall, f1), {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


@dataclass(frozen=True)
class Curve:
    """Cumulative counts at each distinct score, from the highest down.

    Flagging every reading with a score at or above ``thresholds[k]`` gives
    ``tp[k]`` true and ``fp[k]`` false positives.
    """

    thresholds: Floats
    tp: Ints
    fp: Ints
    positives: int
    negatives: int


def curve(sorted_scores: Floats, sorted_actual: Bools) -> Curve:
    """The curve of scores already sorted in descending order, with their labels."""
    n = len(sorted_scores)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return Curve(np.zeros(0), empty, empty, 0, 0)
    changes = np.empty(n, dtype=bool)
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=changes[:-1])
    changes[-1] = True
    ends = np.flatnonzero(changes)
    if len(ends) * 16 < n:  # few distinct scores: binary searches among the anomalies
        tp = np.searchsorted(np.flatnonzero(sorted_actual), ends, side="right").astype(np.int64)
    else:  # a running count (a sum of booleans as int64 is slow, so only when needed)
        tp = np.cumsum(sorted_actual, dtype=np.int64)[ends]
    fp = ends + 1 - tp
    positives = int(tp[-1])
    return Curve(sorted_scores[ends], tp, fp, positives, n - positives)


def roc_auc(c: Curve) -> float | None:
    """Area under the ROC curve; None unless there are both anomalies and normal readings."""
    if c.positives == 0 or c.negatives == 0:
        return None
    tpr = np.concatenate(([0.0], c.tp / c.positives))
    fpr = np.concatenate(([0.0], c.fp / c.negatives))
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(c: Curve) -> float | None:
    """Area under the precision-recall curve as average precision: the precision at
    each threshold weighted by the recall it adds (no interpolation)."""
    if c.positives == 0:
        return None
    recall = np.concatenate(([0.0], c.tp / c.positives))
    precision = c.tp / (c.tp + c.fp)
    return float(np.sum((recall[1:] - recall[:-1]) * precision))


@dataclass(frozen=True)
class BestF1:
    """The threshold (flag when score >= threshold) with the highest point-wise F1."""

    threshold: float
    f1: float
    precision: float
    recall: float


def best_f1(c: Curve) -> BestF1 | None:
    """The best F1 over thresholds a detector's scores can take (not -inf, which only
    readings without a prediction have)."""
    usable = np.isfinite(c.thresholds) | (c.thresholds == np.inf)
    if c.positives == 0 or not usable.any():
        return None
    tp, fp = c.tp[usable], c.fp[usable]
    f1 = 2 * tp / (2 * tp + fp + (c.positives - tp))
    k = int(np.argmax(f1))
    precision = tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else 0.0
    return BestF1(
        threshold=float(c.thresholds[usable][k]),
        f1=float(f1[k]),
        precision=float(precision),
        recall=float(tp[k] / c.positives),
    )


def pr_points(c: Curve, limit: int = 400) -> list[tuple[float, float]]:
    """(recall, precision) pairs along the curve, thinned to about ``limit`` for a chart."""
    if c.positives == 0 or len(c.tp) == 0:
        return []
    keep = np.unique(np.linspace(0, len(c.tp) - 1, min(limit, len(c.tp))).astype(np.int64))
    recall = c.tp[keep] / c.positives
    precision = c.tp[keep] / (c.tp[keep] + c.fp[keep])
    return [(float(r), float(p)) for r, p in zip(recall, precision, strict=True)]
