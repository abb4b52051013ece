"""Two simple detectors run on the truth's own readings: the floor to beat.

- ``rolling-zscore``: for each sensor and channel, how many standard
  deviations a reading lies from the mean of the previous ``window`` readings
  (itself excluded, so a spike cannot hide in its own window). The score is
  the largest over the channels; a reading is flagged at 3 or more.
- ``isolation``: scikit-learn's IsolationForest, one per sensor, trained on
  up to 20,000 of its readings (the channels and their changes from the
  previous reading); the score is the forest's anomaly score (higher is more
  anomalous) and a reading is flagged where the forest's own threshold
  (``contamination="auto"``) says outlier. Needs the optional ``score`` extra.

A reading with a missing value (a missing-data row) is anomalous to both,
with the score ``MISSING_SCORE``: silence is the easiest anomaly to see.
Both are seeded, so the same truth gives the same figures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .columns import Bools, Floats
from .match import Aligned
from .truth import Truth

BASELINES: tuple[str, ...] = ("rolling-zscore", "isolation")
ZSCORE_WINDOW = 600  # readings: ten minutes at the default rate
ZSCORE_FLAG = 3.0
MISSING_SCORE = 1e6
TRAIN_ROWS = 20_000
INSTALL_HINT = "pip install 'sensorfleet[score]'"


def run_baseline(name: str, truth: Truth, scored: Bools | None = None) -> Aligned:
    """The baseline ``name`` laid over every reading of ``truth`` (or the ``scored`` ones)."""
    if not truth.channels:
        raise InputError(
            [f"--baseline {name}: the truth {truth.source} has no measured values "
             "(temperature, vibration, voltage or an equipment model's channels) to run on"]
        )  # fmt: skip
    detectors: dict[str, Callable[[Truth], tuple[Floats, Bools]]] = {
        "rolling-zscore": rolling_zscore,
        "isolation": isolation,
    }
    score, flag = detectors[name](truth)
    n = len(truth)
    return Aligned(
        scored=np.ones(n, dtype=bool) if scored is None else scored,
        predicted=np.ones(n, dtype=bool),
        score=score,
        flag=flag,
        fault=None,
        faults=[],
        rul=None,
        duplicates=np.zeros(n, dtype=np.int64),
        nan_score=np.zeros(n, dtype=bool),
        overall={
            "unknown_sensor": 0,
            "no_reading": 0,
            "duplicate": 0,
            "nan_score": 0,
            "readings_without_prediction": 0,
            "readings_outside_span": 0 if scored is None else int((~scored).sum()),
            "sensors_without_predictions": 0,
        },
    )


def _sensor_bounds(truth: Truth) -> np.ndarray:
    return np.searchsorted(truth.sensor, np.arange(len(truth.sensors) + 1))


def _missing(truth: Truth) -> Bools:
    """Readings lacking a value their sensor reports elsewhere. A channel a sensor never
    reports (another model's, in a file holding several) does not count."""
    missing = np.zeros(len(truth), dtype=bool)
    for values in truth.channels.values():
        absent = np.isnan(values)
        reports = np.bincount(truth.sensor, weights=~absent, minlength=len(truth.sensors)) > 0
        missing |= absent & reports[truth.sensor]
    return missing


def rolling_zscore(truth: Truth, window: int = ZSCORE_WINDOW) -> tuple[Floats, Bools]:
    """Scores and flags of the rolling z-score detector."""
    n = len(truth)
    bounds = _sensor_bounds(truth)
    start_of = np.repeat(bounds[:-1], np.diff(bounds))  # each reading's sensor's first index
    low = np.maximum(np.arange(n) - window, start_of)
    score = np.zeros(n)
    for values in truth.channels.values():
        valid = ~np.isnan(values)
        # Centre each sensor's values first, so the sums of squares keep their precision.
        centred = np.zeros(n)
        for code in range(len(truth.sensors)):
            part = slice(bounds[code], bounds[code + 1])
            seen = values[part][valid[part]]
            if len(seen):
                centred[part] = np.where(valid[part], values[part] - seen.mean(), 0.0)
        sums = np.concatenate(([0.0], np.cumsum(centred)))
        squares = np.concatenate(([0.0], np.cumsum(centred**2)))
        counts = np.concatenate(([0], np.cumsum(valid)))
        here = np.arange(n)
        count = counts[here] - counts[low]
        mean = (sums[here] - sums[low]) / np.maximum(count, 1)
        variance = (squares[here] - squares[low]) / np.maximum(count, 1) - mean**2
        spread = np.sqrt(np.maximum(variance, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(centred - mean) / spread
        z[(count < 2) | ~valid | ~np.isfinite(z)] = 0.0
        np.maximum(score, z, out=score)
    missing = _missing(truth)
    score[missing] = MISSING_SCORE
    return score, score >= ZSCORE_FLAG


def isolation(truth: Truth) -> tuple[Floats, Bools]:
    """Scores and flags of an IsolationForest per sensor."""
    try:
        from sklearn.ensemble import IsolationForest
    except ImportError:
        raise InputError(
            [f"--baseline isolation: needs scikit-learn, which is not installed; {INSTALL_HINT}"]
        ) from None
    n = len(truth)
    missing = _missing(truth)
    columns = []
    for values in truth.channels.values():
        change = np.zeros(n)
        change[1:] = np.abs(np.diff(values))
        # No change is known next to a missing value (NaN in, 0 out).
        columns += [np.where(np.isnan(values), 0.0, values), np.nan_to_num(change, nan=0.0)]
    features = np.column_stack(columns)
    bounds = _sensor_bounds(truth)
    first = np.zeros(n, dtype=bool)
    first[bounds[:-1][bounds[:-1] < n]] = True
    features[first, 1::2] = 0.0  # no change across two sensors' readings
    score = np.full(n, MISSING_SCORE)
    flag = np.ones(n, dtype=bool)
    rng = np.random.default_rng(0)
    for code in range(len(truth.sensors)):
        rows = np.arange(bounds[code], bounds[code + 1])
        rows = rows[~missing[rows]]
        if len(rows) < 2:
            continue
        sample = rows if len(rows) <= TRAIN_ROWS else rng.choice(rows, TRAIN_ROWS, replace=False)
        forest = IsolationForest(n_estimators=100, random_state=0, contamination="auto")
        forest.fit(features[sample])
        score[rows] = -forest.score_samples(features[rows])
        flag[rows] = score[rows] > -forest.offset_
    return score, flag
