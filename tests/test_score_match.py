"""Matching predictions to readings: tolerance, spans, and every left-over counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sensorfleet.errors import InputError
from sensorfleet.score.evaluate import ScoreOptions, evaluate
from sensorfleet.score.match import align
from sensorfleet.score.predictions import read_predictions
from sensorfleet.score.truth import read_truth


def stamp(second: float) -> str:
    whole = int(second)
    return f"2024-03-01T00:00:{whole:02d}.{round((second - whole) * 1e6):06d}Z"


@pytest.fixture
def truth_file(tmp_path: Path) -> Path:
    """Two sensors, ten readings each a second apart; A is anomalous at 3-5 (spike type),
    B at 8-9 (noise)."""
    lines = ["sensor_id,timestamp,anomaly_flag,anomaly_type,model,firmware_version"]
    for second in range(10):
        a = 3 <= second <= 5
        b = second >= 8
        lines.append(f"A,{stamp(second)},{int(a)},{'spike' if a else ''},M1,1.3")
        lines.append(f"B,{stamp(second)},{int(b)},{'noise' if b else ''},M2,1.4")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_predictions(path: Path, rows: list[tuple[str, float, str, str]]) -> Path:
    path.write_text(
        "sensor_id,timestamp,score,flag\n"
        + "".join(f"{s},{stamp(t)},{v},{f}\n" for s, t, v, f in rows)
    )
    return path


def test_every_left_over_is_counted(truth_file: Path, tmp_path: Path) -> None:
    """An unknown sensor, a timestamp between readings, a duplicate and a NaN score are
    each counted; A is scored only from its first to its last prediction; B has none."""
    predictions = write_predictions(
        tmp_path / "p.csv",
        [
            ("A", 2, "0.1", "0"),
            ("A", 3, "0.9", "1"),
            ("A", 3, "0.2", "0"),  # duplicate of the reading at 3 s: the first is kept
            ("A", 4.4, "0.8", "1"),  # 0.4 s from the reading at 4 s
            ("A", 5, "nan", "1"),
            ("A", 7, "0.3", "0"),
            ("Z", 1, "0.5", "1"),  # no such sensor
        ],
    )
    truth = read_truth(str(truth_file))
    aligned = align(truth, read_predictions(str(predictions)), tolerance_us=0)
    assert aligned.overall == {
        "unknown_sensor": 1,
        "no_reading": 1,
        "duplicate": 1,
        "nan_score": 1,
        "readings_without_prediction": 2,  # A at 4 s (unmatched) and 6 s
        "readings_outside_span": 4 + 10,  # A at 0, 1, 8, 9; all of B
        "sensors_without_predictions": 1,
    }
    scored = evaluate(truth, aligned, ScoreOptions(), "p.csv")
    assert scored.overall.readings == 6  # A from 2 s to 7 s
    # Flags 1 at 3 s and 5 s (the NaN score still has a flag); 4 s counts as not flagged.
    assert scored.overall.point_counts == {"tp": 2, "fp": 0, "fn": 1, "tn": 3}
    assert scored.overall.unmatched["unknown_sensor"] == 1
    assert scored.breakdowns["model"]["M1"].unmatched["unknown_sensor"] is None


def test_tolerance_matches_the_nearest_reading(truth_file: Path, tmp_path: Path) -> None:
    """With a 0.5 s tolerance a prediction 0.4 s late matches its reading, and one exactly
    between two readings goes to the earlier."""
    predictions = write_predictions(
        tmp_path / "p.csv", [("A", 2.4, "0.1", "0"), ("A", 3.5, "0.9", "1"), ("A", 5, "1", "1")]
    )
    truth = read_truth(str(truth_file))
    aligned = align(truth, read_predictions(str(predictions)), tolerance_us=500_000)
    matched = np.flatnonzero(aligned.predicted)
    a = truth.sensors.index("A")
    seconds = (truth.time[matched] - truth.time[truth.sensor == a][0]) / 1e6
    assert seconds.tolist() == [2.0, 3.0, 5.0]
    assert aligned.overall["no_reading"] == 0


def test_scores_without_flags_use_the_best_threshold(truth_file: Path, tmp_path: Path) -> None:
    """With scores only, flags come from the threshold with the best point-wise F1, and the
    evaluation says so; --threshold overrides it."""
    path = tmp_path / "p.csv"
    rows = [f"A,{stamp(s)},{0.9 if 3 <= s <= 5 else 0.1 * (s % 3)}" for s in range(10)]
    path.write_text("sensor_id,timestamp,score\n" + "\n".join(rows) + "\n")
    truth = read_truth(str(truth_file))
    aligned = align(truth, read_predictions(str(path)), 0)
    best = evaluate(truth, aligned, ScoreOptions(), "p")
    assert best.flags_from == "best point F1" and best.threshold == 0.9
    assert best.overall.point.f1 == 1.0 and best.overall.range.f1 == 1.0
    fixed = evaluate(truth, aligned, ScoreOptions(threshold=0.15), "p")
    assert fixed.flags_from == "--threshold"
    assert fixed.overall.point_counts["fp"] == 2  # the scores of 0.2 at 2 s and 8 s
    assert fixed.overall.roc_auc == 1.0


def test_missing_columns_are_named(tmp_path: Path) -> None:
    """A predictions file without score or flag is refused, naming what was expected."""
    path = tmp_path / "p.csv"
    path.write_text("sensor_id,timestamp,probability\nA,2024-03-01T00:00:00Z,0.5\n")
    with pytest.raises(InputError, match="missing score or flag; expected sensor_id, timestamp"):
        read_predictions(str(path))


def test_bad_value_names_row_and_column(tmp_path: Path) -> None:
    """A flag that is not 0/1 is reported with its row and column."""
    path = tmp_path / "p.csv"
    path.write_text(
        "sensor_id,timestamp,flag\nA,2024-03-01T00:00:00Z,1\nA,2024-03-01T00:00:01Z,yes\n"
    )
    with pytest.raises(InputError, match=r"row 2: flag: expected 0 or 1 \(got 'yes'\)"):
        read_predictions(str(path))


def test_detection_delay_and_false_alarms_by_hand(tmp_path: Path) -> None:
    """Episodes at 10-19 s, 40-49 s and 70-79 s; flags at 12-15 s (2 s late), 40 s (on
    time), 30-31 s and 90 s (two false alarms): delays 2 and 0 s (median 1, p95 1.9), one
    episode missed, and 2 false alarms in 100 s of one sensor = 1,728 per sensor-day."""
    truth_path = tmp_path / "labels.csv"
    episodes = {*range(10, 20), *range(40, 50), *range(70, 80)}
    truth_path.write_text(
        "sensor_id,timestamp,anomaly_flag,anomaly_type\n"
        + "".join(
            f"A,2024-03-01T00:{s // 60:02d}:{s % 60:02d}Z,{int(s in episodes)},"
            f"{'trend' if s in episodes else ''}\n"
            for s in range(100)
        )
    )
    flagged = {*range(12, 16), 40, 30, 31, 90}
    predictions = tmp_path / "p.csv"
    predictions.write_text(
        "sensor_id,timestamp,flag\n"
        + "".join(
            f"A,2024-03-01T00:{s // 60:02d}:{s % 60:02d}Z,{int(s in flagged)}\n" for s in range(100)
        )
    )
    truth = read_truth(str(truth_path))
    scored = evaluate(
        truth, align(truth, read_predictions(str(predictions)), 0), ScoreOptions(), "p"
    )
    delay = scored.overall.delay
    assert (delay.detected, delay.missed) == (2, 1)
    assert delay.median_seconds == pytest.approx(1.0)
    assert delay.p95_seconds == pytest.approx(1.9)
    assert scored.overall.false_alarms == 2
    assert scored.overall.sensor_days == pytest.approx(100 / 86400)
    assert scored.overall.false_alarms_per_sensor_day == pytest.approx(1728.0)
    # Range recall: 4/10 and 1/10 covered, the third missed; precision: 4/4, 1/1, 0, 0.
    assert scored.overall.range.recall == pytest.approx((0.4 + 0.1 + 0) / 3)
    assert scored.overall.range.precision == pytest.approx((1 + 1 + 0 + 0) / 4)
