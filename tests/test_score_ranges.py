"""Range-based precision and recall (Tatbul et al., NeurIPS 2018), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sensorfleet.score.points import point_prf
from sensorfleet.score.ranges import RangeParams, range_prf, runs


def ranges(series: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The runs of ones of a 0/1 series (no breaks)."""
    active = np.array(series, dtype=bool)
    return runs(active, np.zeros(len(active), dtype=bool))


def ones(length: int, *spans: tuple[int, int]) -> list[int]:
    """A 0/1 series with ones on each inclusive span."""
    series = [0] * length
    for first, last in spans:
        series[first : last + 1] = [1] * (last - first + 1)
    return series


# The "simple" example shipped with the paper's reference evaluator: real anomalies
# at 20-21, 25-27 and 44-47; predictions at 19-20, 23-30, 37 and 49 (0-based).
SIMPLE_REAL = ones(50, (20, 21), (25, 27), (44, 47))
SIMPLE_PRED = ones(50, (19, 20), (23, 30), (37, 37), (49, 49))


def test_runs_split_at_breaks_and_label_changes() -> None:
    """A run ends where the series stops, where a break starts a new segment, and where
    the label changes."""
    active = np.array([1, 1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    breaks = np.zeros(9, dtype=bool)
    breaks[4] = True
    label = np.array([0, 0, 0, 1, 1, 1, 2, 0, 3])
    starts, ends = runs(active, breaks, label)
    assert starts.tolist() == [0, 3, 4, 6, 8]
    assert ends.tolist() == [2, 4, 6, 7, 9]


def test_simple_example_flat() -> None:
    """Flat bias, reciprocal cardinality, alpha 0: recall (1/2 + 3/3 + 0) / 3 = 0.5 and
    precision (1/2 + 3/8 + 0 + 0) / 4 = 0.21875, by hand from the definitions."""
    result = range_prf(ranges(SIMPLE_REAL), ranges(SIMPLE_PRED), RangeParams())
    assert result.prf.recall == pytest.approx(0.5)
    assert result.prf.precision == pytest.approx(0.21875)
    assert result.prf.f1 == pytest.approx(2 * 0.5 * 0.21875 / 0.71875)
    assert result.detected.tolist() == [True, True, False]
    assert result.false_alarms == 2 and result.predicted_ranges == 4
    assert result.first_hit.tolist() == [20, 25, -1]


@pytest.mark.parametrize(
    ("bias", "recall"),
    [
        # The first anomaly (2 long) is hit at its first position only; the second fully.
        ("front", (2 / 3 + 1) / 3),  # position 1 of 2 weighs 2 of 3
        ("back", (1 / 3 + 1) / 3),  # position 1 of 2 weighs 1 of 3
        ("middle", (1 / 2 + 1) / 3),  # both positions of a 2-long range weigh 1
    ],
)
def test_simple_example_positional_bias(bias: str, recall: float) -> None:
    """Front, back and middle bias weigh the detected part of each anomaly as the paper's
    delta functions say."""
    result = range_prf(ranges(SIMPLE_REAL), ranges(SIMPLE_PRED), RangeParams(recall_bias=bias))
    assert result.prf.recall == pytest.approx(recall)
    assert result.prf.precision == pytest.approx(0.21875)  # precision stays flat


def test_simple_example_classical_counts() -> None:
    """Point-wise on the same series: 4 of 12 flags are right, 4 of 9 anomalous points found."""
    prf, counts = point_prf(np.array(SIMPLE_REAL, bool), np.array(SIMPLE_PRED, bool))
    assert counts == {"tp": 4, "fp": 8, "fn": 5, "tn": 33}
    assert prf.precision == pytest.approx(4 / 12) and prf.recall == pytest.approx(4 / 9)


def test_fragmented_detection_and_cardinality() -> None:
    """One 10-long anomaly hit by two fragments covering 3 positions each: overlap 6/10,
    halved by reciprocal cardinality; a fragment sticking out loses precision."""
    real = ranges(ones(20, (0, 9)))
    pred = ranges(ones(20, (2, 4), (7, 11)))
    reciprocal = range_prf(real, pred, RangeParams())
    assert reciprocal.prf.recall == pytest.approx(0.3)
    assert reciprocal.prf.precision == pytest.approx((1.0 + 3 / 5) / 2)
    one = range_prf(real, pred, RangeParams(cardinality="one"))
    assert one.prf.recall == pytest.approx(0.6)
    existence = range_prf(real, pred, RangeParams(alpha=0.5))
    assert existence.prf.recall == pytest.approx(0.5 * 1 + 0.5 * 0.3)
    front = range_prf(real, pred, RangeParams(recall_bias="front", precision_bias="front"))
    # Weights 10..1 (sum 55): positions 3-5 weigh 8+7+6, positions 8-10 weigh 3+2+1.
    assert front.prf.recall == pytest.approx((21 + 6) / 55 / 2)
    # The second fragment (5 long, weights 5..1) overlaps at its first three positions.
    assert front.prf.precision == pytest.approx((1.0 + 12 / 15) / 2)
    middle = range_prf(real, pred, RangeParams(recall_bias="middle"))
    # Weights 1,2,3,4,5,5,4,3,2,1 (sum 30): 3+4+5 and 3+2+1.
    assert middle.prf.recall == pytest.approx(18 / 30 / 2)
    back = range_prf(real, pred, RangeParams(recall_bias="back"))
    assert back.prf.recall == pytest.approx((12 + 27) / 55 / 2)


def test_one_prediction_spanning_two_anomalies() -> None:
    """A flagged run covering half of each of two anomalies earns each half its recall,
    and its precision (4/6 covered) is divided by the two it overlaps."""
    real = ranges(ones(12, (0, 3), (6, 9)))
    pred = ranges(ones(12, (2, 7)))
    result = range_prf(real, pred, RangeParams())
    assert result.prf.recall == pytest.approx(0.5)
    assert result.prf.precision == pytest.approx(4 / 6 / 2)
    assert range_prf(real, pred, RangeParams(cardinality="one")).prf.precision == (
        pytest.approx(4 / 6)
    )


def test_middle_bias_on_odd_length() -> None:
    """On a 5-long range the middle weights are 1,2,3,2,1: the centre alone earns 3/9."""
    real = ranges(ones(7, (1, 5)))
    pred = ranges(ones(7, (3, 3)))
    result = range_prf(real, pred, RangeParams(recall_bias="middle"))
    assert result.prf.recall == pytest.approx(3 / 9)


@pytest.mark.parametrize("cardinality", ["one", "reciprocal"])
def test_unit_ranges_reduce_to_point_metrics(cardinality: str) -> None:
    """With every range one reading long, alpha 0 and flat bias, range precision and
    recall equal the point-wise ones (the paper's consistency property)."""
    rng = np.random.default_rng(3)
    actual = np.zeros(400, dtype=bool)
    actual[::7] = True
    flagged = np.zeros(400, dtype=bool)
    flagged[rng.choice(np.arange(0, 400, 2), 60, replace=False)] = True
    every = np.ones(400, dtype=bool)  # every position its own segment
    real, pred = runs(actual, every), runs(flagged, every)
    result = range_prf(real, pred, RangeParams(cardinality=cardinality))
    point, _ = point_prf(actual, flagged)
    assert result.prf.precision == pytest.approx(point.precision)
    assert result.prf.recall == pytest.approx(point.recall)


def test_perfect_and_empty_predictions() -> None:
    """Predicting the anomalies exactly scores 1.0; predicting nothing gives recall 0 and
    an undefined precision."""
    real = ranges(SIMPLE_REAL)
    perfect = range_prf(real, real, RangeParams(recall_bias="front"))
    assert (perfect.prf.precision, perfect.prf.recall, perfect.prf.f1) == (1.0, 1.0, 1.0)
    empty = np.zeros(0, dtype=np.int64)
    nothing = range_prf(real, (empty, empty), RangeParams())
    assert nothing.prf.recall == 0.0 and nothing.prf.precision is None
    assert nothing.prf.f1 == 0.0
    assert nothing.first_hit.tolist() == [-1, -1, -1]
