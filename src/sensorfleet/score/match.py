"""Pairing each prediction with the reading it judges, counting every one that pairs with none.

A prediction matches the reading of its sensor whose timestamp is nearest to
its own, if that is within the tolerance (a tie goes to the earlier reading).
Nothing is dropped silently; each prediction or reading left out is counted:

- ``unknown_sensor``: predictions for a sensor the truth does not have;
- ``no_reading``: predictions with no reading of their sensor within the tolerance;
- ``duplicate``: further predictions for a reading already matched (the first
  in file order is kept);
- ``nan_score``: matched predictions whose score is NaN (ranked below every score);
- ``readings_without_prediction``: readings inside the scored span that no
  prediction matched (they count as not flagged, with the lowest score);
- ``readings_outside_span``: readings before a sensor's first matched prediction,
  after its last, or of a sensor with no prediction at all (not scored);
- ``sensors_without_predictions``: truth sensors no prediction matched.

The scored span of a sensor runs from its first matched reading to its last,
so a detector that only judges the final day of a week is scored on that day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import Bools, Codes, Floats, Ints
from .predictions import Predictions
from .truth import Truth

OVERALL_ONLY = ("unknown_sensor", "no_reading", "sensors_without_predictions")


@dataclass
class Aligned:
    """The predictions laid over the truth's readings (arrays of the truth's length)."""

    scored: Bools  # inside its sensor's scored span
    predicted: Bools  # a prediction matched this reading
    score: Floats | None  # -inf where no usable score
    flag: Bools | None
    fault: Codes | None  # into ``faults``; -1 where none was predicted
    faults: list[str]
    rul: Floats | None  # seconds; NaN where none
    duplicates: Ints  # further predictions that matched this reading
    nan_score: Bools
    overall: dict[str, int]  # the counts in the module docstring


def align(truth: Truth, predictions: Predictions, tolerance_us: int) -> Aligned:
    """Match ``predictions`` to ``truth`` within ``tolerance_us`` microseconds."""
    n = len(truth)
    index = {name: code for code, name in enumerate(truth.sensors)}
    lookup = np.array([index.get(name, -1) for name in predictions.sensors], dtype=np.int64)
    sensor = lookup[predictions.sensor] if len(lookup) else np.zeros(0, np.int64)
    matched = np.full(len(predictions), -1, dtype=np.int64)
    bounds = np.searchsorted(truth.sensor, np.arange(len(truth.sensors) + 1))
    order = np.argsort(sensor, kind="stable")
    cuts = np.searchsorted(sensor[order], np.arange(-1, len(truth.sensors) + 1))
    for code in range(len(truth.sensors)):
        rows = order[cuts[code + 1] : cuts[code + 2]]
        if len(rows):
            low, high = bounds[code], bounds[code + 1]
            matched[rows] = _nearest(truth.time[low:high], predictions.time[rows], tolerance_us)
            matched[rows[matched[rows] >= 0]] += low
    unknown = int((sensor < 0).sum())
    no_reading = int(((sensor >= 0) & (matched < 0)).sum())
    hits = np.flatnonzero(matched >= 0)  # file order
    counts = np.bincount(matched[hits], minlength=n) if len(hits) else np.zeros(n, np.int64)
    kept = hits[_first_of_each(matched[hits], counts)]
    reading = matched[kept]
    duplicates = np.maximum(counts - 1, 0)
    predicted = counts > 0
    scored = _spans(truth.sensor, predicted)
    score = None
    nan_score = np.zeros(n, dtype=bool)
    if predictions.score is not None:
        score = np.full(n, -np.inf)
        values = predictions.score[kept]
        missing = np.isnan(values)
        nan_score[reading[missing]] = True
        score[reading] = np.where(missing, -np.inf, values)
    flag = None
    if predictions.flag is not None:
        flag = np.zeros(n, dtype=bool)
        flag[reading] = predictions.flag[kept]
    fault = None
    if predictions.fault is not None:
        fault = np.full(n, -1, dtype=np.int32)
        fault[reading] = predictions.fault[kept]
    rul = None
    if predictions.rul is not None:
        rul = np.full(n, np.nan)
        rul[reading] = predictions.rul[kept]
    with_predictions = np.unique(truth.sensor[reading]) if len(reading) else np.zeros(0, np.int32)
    overall = {
        "unknown_sensor": unknown,
        "no_reading": no_reading,
        "duplicate": int(duplicates.sum()),
        "nan_score": int(nan_score.sum()),
        "readings_without_prediction": int((scored & ~predicted).sum()),
        "readings_outside_span": int((~scored).sum()),
        "sensors_without_predictions": len(truth.sensors) - len(with_predictions),
    }
    return Aligned(
        scored=scored,
        predicted=predicted,
        score=score,
        flag=flag,
        fault=fault,
        faults=predictions.faults,
        rul=rul,
        duplicates=duplicates,
        nan_score=nan_score,
        overall=overall,
    )


def _nearest(readings: Ints, times: Ints, tolerance_us: int) -> Ints:
    """For each of ``times``, the index of the nearest of the sorted ``readings`` within
    the tolerance, or -1."""
    if len(readings) == 0:
        return np.full(len(times), -1, dtype=np.int64)
    right = np.searchsorted(readings, times, side="left")
    left = np.maximum(right - 1, 0)
    right = np.minimum(right, len(readings) - 1)
    before = np.abs(times - readings[left])
    after = np.abs(readings[right] - times)
    best = np.where(after < before, right, left)
    distance = np.minimum(before, after)
    return np.where(distance <= tolerance_us, best, -1).astype(np.int64)


def _first_of_each(readings: Ints, counts: Ints) -> Bools:
    """Which of the matches (in file order) is the first for its reading: a reading matched
    once needs no search, so only the duplicates' few readings are sorted."""
    first: Bools = counts[readings] == 1
    repeated = np.flatnonzero(~first)
    if len(repeated):
        _, earliest = np.unique(readings[repeated], return_index=True)
        first[repeated[earliest]] = True
    return first


def _spans(sensor: Codes, predicted: Bools) -> Bools:
    """Readings between each sensor's first and last matched reading, inclusive (the
    readings are sorted by sensor, so the matched ones are too)."""
    n = len(sensor)
    reading = np.flatnonzero(predicted)
    if len(reading) == 0:
        return np.zeros(n, dtype=bool)
    owners = sensor[reading]
    last = np.flatnonzero(np.append(owners[1:] != owners[:-1], True))
    first = np.concatenate(([0], last[:-1] + 1))
    steps = np.zeros(n + 1, dtype=np.int64)
    np.add.at(steps, reading[first], 1)
    np.add.at(steps, reading[last] + 1, -1)
    return np.cumsum(steps[:-1]) > 0
