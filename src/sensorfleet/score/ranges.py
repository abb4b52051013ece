"""Range-based (event-wise) precision and recall, after Tatbul et al., NeurIPS 2018.

An anomaly is a range of consecutive readings, and so is each stretch a
detector flags. For a real range R and the predicted ranges P overlapping it:

    recall(R)  = alpha * existence(R) + (1 - alpha) * cardinality(R) * sum_P overlap(R, R∩P)
    precision(P) = cardinality(P) * sum_R overlap(P, P∩R)

- ``existence`` is 1 if any prediction touches R at all (alpha weighs this
  reward for merely noticing the anomaly; the paper uses none for precision);
- ``overlap(R, part)`` is the share of R's positional weight that ``part``
  covers, where position i of n weighs ``flat`` 1, ``front`` n - i + 1 (early
  detection counts more), ``back`` i, or ``middle`` i up to n/2 then n - i + 1;
- ``cardinality`` is 1 when one prediction covers the range, else ``one`` (1,
  no penalty) or ``reciprocal`` (1 / the number of fragments), the paper's γ.

Recall is the mean over real ranges, precision the mean over predicted
ranges. With every range one reading long, alpha 0, flat bias and any
cardinality, both equal the point-wise figures.

Everything is computed from the range bounds alone: the pairs of overlapping
ranges are found with two binary searches, and each weight sum has a closed
form: the cost grows with the number of ranges, never with their length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import Bools, Codes, Floats, Ints
from .points import PRF, f1_of

BIASES: tuple[str, ...] = ("flat", "front", "back", "middle")
CARDINALITIES: tuple[str, ...] = ("reciprocal", "one")


@dataclass(frozen=True)
class RangeParams:
    """The model's parameters (the defaults: alpha 0, reciprocal, flat/flat)."""

    alpha: float = 0.0  # weight of the existence reward in recall, 0 to 1
    cardinality: str = "reciprocal"  # one of CARDINALITIES
    recall_bias: str = "flat"  # one of BIASES
    precision_bias: str = "flat"


def runs(active: Bools, breaks: Bools, label: Codes | None = None) -> tuple[Ints, Ints]:
    """Start and end (exclusive) of each run of ``active`` positions.

    A run ends where ``breaks`` is set (a new sensor, or readings left out)
    and, with ``label``, where the label changes (a new episode type).
    """
    n = len(active)
    joined = np.zeros(n, dtype=bool)
    if n > 1:
        joined[1:] = active[1:] & active[:-1] & ~breaks[1:]
        if label is not None:
            joined[1:] &= label[1:] == label[:-1]
    starts = np.flatnonzero(active & ~joined)
    last = active & ~np.append(joined[1:], False)
    ends = np.flatnonzero(last) + 1
    return starts.astype(np.int64), ends.astype(np.int64)


def _cumulative(k: Floats, length: Floats, bias: str) -> Floats:
    """Sum of the positional weights of positions 1..k of a range ``length`` long."""
    if bias == "flat":
        return k
    if bias == "back":
        return k * (k + 1) / 2
    if bias == "front":
        return k * (length + 1) - k * (k + 1) / 2
    half = np.floor(length / 2)
    rising = np.minimum(k, half)
    falling = np.maximum(k - half, 0)  # positions half+1..k weigh length - i + 1
    upper = half + falling
    falling_sum = falling * (length + 1) - (upper * (upper + 1) - half * (half + 1)) / 2
    total: Floats = rising * (rising + 1) / 2 + falling_sum
    return total


def _weight(start: Ints, end: Ints, own_start: Ints, own_end: Ints, bias: str) -> Floats:
    """Share of the range [own_start, own_end) weight that [start, end) covers."""
    length = (own_end - own_start).astype(np.float64)
    a = (start - own_start).astype(np.float64)
    b = (end - own_start).astype(np.float64)
    covered = _cumulative(b, length, bias) - _cumulative(a, length, bias)
    return covered / _cumulative(length, length, bias)


@dataclass(frozen=True)
class RangeResult:
    """Range precision and recall, and what each range did."""

    prf: PRF
    detected: Bools  # per real range: touched by a prediction
    first_hit: Ints  # per real range: first flagged position inside it (-1 if none)
    false_alarms: int  # predicted ranges touching no real range
    predicted_ranges: int


def range_prf(
    real: tuple[Ints, Ints], predicted: tuple[Ints, Ints], params: RangeParams
) -> RangeResult:
    """Range-based precision and recall of sorted, disjoint ``predicted`` against ``real``."""
    rs, re = real
    ps, pe = predicted
    lo = np.searchsorted(pe, rs, side="right")  # first prediction ending after R starts
    hi = np.searchsorted(ps, re, side="left")  # first prediction starting at or after R ends
    count = np.maximum(hi - lo, 0)
    pair_real = np.repeat(np.arange(len(rs)), count)
    offsets = np.arange(len(pair_real)) - np.repeat(np.cumsum(count) - count, count)
    pair_pred = np.repeat(lo, count) + offsets
    start = np.maximum(rs[pair_real], ps[pair_pred])
    end = np.minimum(re[pair_real], pe[pair_pred])
    detected = count > 0
    recall = None
    if len(rs):
        share = _weight(start, end, rs[pair_real], re[pair_real], params.recall_bias)
        overlap = np.bincount(pair_real, weights=share, minlength=len(rs))
        gamma = _gamma(count, params.cardinality)
        each = params.alpha * detected + (1 - params.alpha) * gamma * overlap
        recall = float(each.mean())
    pred_count = np.bincount(pair_pred, minlength=len(ps)) if len(ps) else np.zeros(0, np.int64)
    precision = None
    if len(ps):
        share = _weight(start, end, ps[pair_pred], pe[pair_pred], params.precision_bias)
        overlap = np.bincount(pair_pred, weights=share, minlength=len(ps))
        precision = float((_gamma(pred_count, params.cardinality) * overlap).mean())
    first_hit = np.full(len(rs), -1, dtype=np.int64)
    if len(ps):  # the first overlapping prediction is the first ending after R starts
        first_hit = np.where(detected, np.maximum(rs, ps[np.minimum(lo, len(ps) - 1)]), -1)
    return RangeResult(
        prf=PRF(precision, recall, f1_of(precision, recall)),
        detected=detected,
        first_hit=first_hit.astype(np.int64),
        false_alarms=int(np.count_nonzero(pred_count == 0)),
        predicted_ranges=len(ps),
    )


def _gamma(count: Ints, cardinality: str) -> Floats:
    if cardinality == "one":
        return np.ones(len(count))
    return 1.0 / np.maximum(count, 1)
