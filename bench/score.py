"""Scoring ten million readings, beside a plain numpy pass over the same arrays.

The truth is the demo fleet (the four shipped identities) backfilled by the
real node until it holds ``--rows`` readings; the predictions are a CSV with
one row per reading (sensor_id, timestamp, score, flag). Ours is the whole
library call of ``sensorfleet score``: read the truth from SQLite, parse the
CSV, match, and compute every metric and breakdown. The floor is what any
scorer must do once the arrays are in memory: point-wise counts and one sort
of the scores for the ROC area, in plain numpy. Wall and CPU seconds are both
reported, since the machine may be shared.

    python -m bench.score [--rows N] [--repeat N] [--data FOLDER] [--smoke]
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sensorfleet.score.evaluate import ScoreOptions, evaluate
from sensorfleet.score.match import align
from sensorfleet.score.pipeline import read_inputs

from ._common import parser, save

ROOT = Path(__file__).resolve().parents[1]
SENSORS = 4  # identities/ holds four
TARGET_SECONDS = 30.0
FULL_ROWS = 10_000_000
SMOKE_ROWS = 100_000


def build_truth(folder: Path, rows: int) -> Path:
    """The demo fleet backfilled at 1 reading/s until it holds about ``rows`` readings."""
    db = folder / "truth.db"
    seconds = -(-rows // SENSORS)
    subprocess.run(
        [sys.executable, "-m", "sensorfleet", "run", "--identity", str(ROOT / "identities"),
         "--db", str(db), "--backfill", f"{seconds}s", "--start", "2024-01-01T00:00:00Z",
         "--seed", "1", "--log-level", "WARNING"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    return db


def write_predictions(db: Path, path: Path) -> None:
    """A noisy detector: anomalies score 0.3 higher on average; flag where score >= 0.8."""
    score = "(((rowid * 2654435761) % 1000) / 1000.0 * 0.7 + anomaly_flag * 0.3)"
    line = (
        f"sensor_id || ',' || timestamp || ',' || printf('%.3f', {score}) || ',' "
        f"|| ({score} >= 0.8)"
    )
    with sqlite3.connect(db) as conn, path.open("wb") as out:
        out.write(b"sensor_id,timestamp,score,flag\n")
        high = conn.execute("SELECT max(rowid) FROM sensor_readings").fetchone()[0]
        for first in range(1, high + 1, 500_000):
            text = conn.execute(
                f"SELECT group_concat({line}, char(10)) FROM sensor_readings "
                "WHERE rowid BETWEEN ? AND ?",
                (first, first + 499_999),
            ).fetchone()[0]
            if text:
                out.write(text.encode() + b"\n")


def ours(db: Path, predictions: Path) -> dict[str, Any]:
    """Seconds for each stage of the real scoring path (the two readers run side by side,
    as ``sensorfleet score`` runs them, each timed from its start to its end)."""
    stages: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    truth, predicted = read_inputs(str(db), str(predictions), seconds=stages)
    assert predicted is not None
    stages["read_both"] = time.perf_counter() - wall
    start = time.perf_counter()
    aligned = align(truth, predicted, 0)
    stages["match"] = time.perf_counter() - start
    start = time.perf_counter()
    scored = evaluate(truth, aligned, ScoreOptions(), str(predictions))
    stages["metrics"] = time.perf_counter() - start
    assert aligned.overall["no_reading"] == 0 and scored.overall.readings == len(truth)
    return {
        "rows": len(truth),
        "seconds": round(time.perf_counter() - wall, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "stages": {k: round(v, 2) for k, v in stages.items()},
        "arrays": (truth.anomaly, aligned.flag, aligned.score),
        "roc_auc": scored.overall.roc_auc,
    }


def plain_numpy(actual: np.ndarray, flag: np.ndarray, score: np.ndarray) -> float:
    """Seconds for point counts and a sort-based ROC area over arrays already in memory."""
    start = time.perf_counter()
    tp = np.count_nonzero(actual & flag)
    fp = np.count_nonzero(flag) - tp
    fn = np.count_nonzero(actual) - tp
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(actual[order])
    misses = np.arange(1, len(order) + 1) - hits
    area = np.trapezoid(hits / hits[-1], misses / misses[-1])
    assert tp + fp + fn >= 0 and 0 <= area <= 1
    return time.perf_counter() - start


def main() -> None:
    cli = parser("Score ten million readings vs a plain numpy pass.")
    cli.add_argument("--rows", type=int, default=None, help=f"readings (default {FULL_ROWS:,})")
    cli.add_argument("--repeat", type=int, default=3, help="runs of each, interleaved (median)")
    cli.add_argument(
        "--data", type=Path, help="reuse this folder's truth.db and predictions.csv (or make them)"
    )
    options = cli.parse_args()
    rows = options.rows or (SMOKE_ROWS if options.smoke else FULL_ROWS)
    repeat = 1 if options.smoke else max(options.repeat, 1)
    with tempfile.TemporaryDirectory(prefix="bench-score-") as scratch:
        folder = options.data or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        db, predictions = folder / "truth.db", folder / "predictions.csv"
        started = time.perf_counter()
        if not (db.is_file() and predictions.is_file()):
            build_truth(folder, rows)
            write_predictions(db, predictions)
        prepared = time.perf_counter() - started
        runs, floors = [], []
        for _ in range(repeat):  # interleaved, so both see the same load
            result = ours(db, predictions)
            actual, flag, score = result.pop("arrays")
            floors.append(plain_numpy(actual, flag, score))
            runs.append(result)
            del actual, flag, score
    result = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median run
    floor = statistics.median(floors)
    figures = {
        **result,
        "runs": repeat,
        "seconds_each": [r["seconds"] for r in runs],
        "cpu_seconds_each": [r["cpu_seconds"] for r in runs],
        # The machine may be shared: the load says how much of it this run had.
        "load_average_after": round(os.getloadavg()[0], 2),
        "plain_numpy_seconds": round(floor, 3),
        "ratio_to_plain_numpy": round(result["seconds"] / floor, 1),
        "target_seconds": TARGET_SECONDS,
        "prepare_seconds": round(prepared, 1),
    }
    path = save("score", figures, options.out)
    print(
        f"score: {result['rows']:,} rows in {result['seconds']} s ({result['cpu_seconds']} s "
        f"CPU; stages {result['stages']}; median of {figures['seconds_each']}); plain numpy "
        f"{floor:.2f} s; wrote {path}"
    )


if __name__ == "__main__":
    main()
