"""The reference detectors: what they flag, and how they treat missing values."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from test_score_truth import equipment_db

from sensorfleet.errors import InputError
from sensorfleet.score.baselines import MISSING_SCORE, isolation, rolling_zscore, run_baseline
from sensorfleet.score.truth import read_truth


def labels_with_values(path: Path) -> Path:
    """One sensor, 400 readings a second apart: temperature alternating 20/21, a spike to
    40 at reading 300, and reading 350 missing (NULL values, flagged missing_data)."""
    lines = ["sensor_id,timestamp,anomaly_flag,anomaly_type,temperature,vibration,voltage"]
    for i in range(400):
        t = f"2024-03-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        if i == 350:
            lines.append(f"S,{t},1,missing_data,,,")
        elif i == 300:
            lines.append(f"S,{t},1,spike,40,2.5,12")
        else:
            lines.append(f"S,{t},0,,{20 + i % 2},2.5,12")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rolling_zscore_flags_the_spike_and_the_gap(tmp_path: Path) -> None:
    """The spike lies about 38 standard deviations from its window's mean; the missing
    reading scores MISSING_SCORE; nothing else reaches 3."""
    truth = read_truth(str(labels_with_values(tmp_path / "labels.csv")), channels=True)
    score, flag = rolling_zscore(truth, window=100)
    assert np.flatnonzero(flag).tolist() == [300, 350]
    assert score[300] == pytest.approx(19.5 / 0.5, rel=0.01)  # mean 20.5, spread 0.5
    assert score[350] == MISSING_SCORE
    assert score[:300].max() < 3


def test_isolation_scores_the_spike_highest(tmp_path: Path) -> None:
    """The forest ranks the spike above every normal reading but the one after it (a jump
    back of the same size), flags both anomalies, and sees no jump beside the gap."""
    pytest.importorskip("sklearn")
    truth = read_truth(str(labels_with_values(tmp_path / "labels.csv")), channels=True)
    score, flag = isolation(truth)
    normal = np.ones(400, dtype=bool)
    normal[[300, 301, 350]] = False
    assert score[300] > score[normal].max() and flag[300] and flag[350]
    assert score[351] < score[300]


def test_channels_of_another_table_are_not_missing(tmp_path: Path) -> None:
    """In a file holding the classic table and an equipment table, a compressor reading is
    not 'missing' for lacking a temperature column: only its own channels count."""
    db = equipment_db(tmp_path / "plant.db")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE sensor_readings (timestamp TEXT, sensor_id TEXT, temperature REAL, "
            "vibration REAL, voltage REAL, anomaly_flag INTEGER, anomaly_type TEXT)"
        )
        conn.execute(
            "INSERT INTO sensor_readings VALUES ('2024-03-01T00:00:00Z', 'T1', 20, 2, 12, 0, NULL)"
        )
    truth = read_truth(str(db), channels=True)
    score, _ = rolling_zscore(truth)
    assert (score < MISSING_SCORE).all()
    aligned = run_baseline("rolling-zscore", truth)
    assert aligned.flag is not None and not aligned.flag.all()


def test_a_truth_without_values_is_refused(tmp_path: Path) -> None:
    """A labels file without measured values cannot run a baseline: one line says so."""
    path = tmp_path / "labels.csv"
    path.write_text("sensor_id,timestamp,fault\nP1,2024-03-01T00:00:00Z,\n")
    with pytest.raises(InputError, match="has no measured values"):
        run_baseline("rolling-zscore", read_truth(str(path), channels=True))
