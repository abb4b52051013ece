"""Point-wise metrics and the curves from scores, against hand counts and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from sensorfleet.score.points import average_precision, best_f1, curve, point_prf, roc_auc


def ranked(scores: list[float] | np.ndarray, actual: list[int] | np.ndarray):  # type: ignore[no-untyped-def]
    """The curve of unsorted scores (sorted here the way ``evaluate`` sorts them)."""
    s = np.asarray(scores, dtype=float)
    a = np.asarray(actual, dtype=bool)
    order = np.argsort(-s, kind="stable")
    return curve(s[order], a[order])


def brute_force_auc(scores: np.ndarray, actual: np.ndarray) -> float:
    """The probability that an anomaly outscores a normal reading, ties counting half."""
    positive, negative = scores[actual], scores[~actual]
    wins = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((wins + 0.5 * ties) / (len(positive) * len(negative)))


def test_point_counts_by_hand() -> None:
    """3 of 5 flags right, 3 of 4 anomalies found: precision 0.6, recall 0.75, F1 2/3."""
    actual = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    flagged = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    prf, counts = point_prf(actual, flagged)
    assert counts == {"tp": 3, "fp": 2, "fn": 1, "tn": 4}
    assert prf.precision == pytest.approx(0.6)
    assert prf.recall == pytest.approx(0.75)
    assert prf.f1 == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))


def test_all_zero_predictions_give_recall_zero() -> None:
    """Flagging nothing: recall 0, F1 0, precision undefined."""
    prf, _ = point_prf(np.array([1, 0, 1], bool), np.zeros(3, bool))
    assert prf.recall == 0.0 and prf.f1 == 0.0 and prf.precision is None


def test_auc_and_average_precision_by_hand() -> None:
    """Scores 0.9(a) 0.8(n) 0.7(a) 0.6(n): ROC-AUC 3/4; average precision (1 + 2/3) / 2."""
    c = ranked([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    assert roc_auc(c) == pytest.approx(0.75)
    assert average_precision(c) == pytest.approx((1 + 2 / 3) / 2)


def test_ties_count_half() -> None:
    """An anomaly and a normal reading with the same score make the AUC 0.5."""
    assert roc_auc(ranked([0.5, 0.5], [1, 0])) == pytest.approx(0.5)


def test_auc_matches_brute_force_pairs() -> None:
    """On rounded random scores (many ties) the AUC equals the pairwise count."""
    rng = np.random.default_rng(7)
    actual = rng.random(3000) < 0.1
    scores = np.round(rng.normal(size=3000) + actual * 0.8, 1)
    assert roc_auc(ranked(scores, actual)) == pytest.approx(brute_force_auc(scores, actual))


def test_perfect_scores_and_shuffled_scores() -> None:
    """Scores that separate the classes give AUC and AP 1.0; the same scores shuffled give
    an AUC near 0.5."""
    rng = np.random.default_rng(11)
    actual = rng.random(200_000) < 0.05
    perfect = actual + rng.random(200_000) * 0.5
    assert roc_auc(ranked(perfect, actual)) == 1.0
    assert average_precision(ranked(perfect, actual)) == 1.0
    shuffled = rng.permutation(perfect)
    assert roc_auc(ranked(shuffled, actual)) == pytest.approx(0.5, abs=0.01)


def test_best_f1_threshold() -> None:
    """Of the thresholds 0.9, 0.8, 0.7 and 0.1, flagging at >= 0.7 gives the best F1 (0.8)."""
    best = best_f1(ranked([0.9, 0.8, 0.7, 0.1, 0.1], [1, 0, 1, 0, 0]))
    assert best is not None
    assert best.threshold == 0.7
    assert best.f1 == pytest.approx(0.8)
    assert (best.precision, best.recall) == (pytest.approx(2 / 3), 1.0)
