"""``sensorfleet score`` gives the same JSON, to the last digit, for every way of reading it.

A small seeded case is scored from every input format (predictions as CSV, quoted CSV,
JSON lines and an SQLite table; truth from a node database, the central store that
``sensorfleet sync`` fills, a node database whose labels are hidden in the truth file beside
it, and that truth file alone), with missing, duplicate, unknown-sensor and unmatched
predictions, assorted spellings of numbers and times, and ``--tolerance``. Each result is
compared with the JSON that the readers gave before they were made fast (``score_formats/``;
rewrite with ``SENSORFLEET_WRITE_SCORE_GOLDEN=1`` only when the scores must change), and
every format of one case with the others.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, clean_env, run_main, write_config

from sensorfleet.node.layout import ChannelColumn, equipment_layout, truth_schema_sql
from sensorfleet.score import tables
from sensorfleet.score.evaluate import ScoreOptions
from sensorfleet.score.pipeline import ScoreRequest, score_detectors
from sensorfleet.score.render import render_json

GOLDEN = Path(__file__).parent / "score_formats"
START = "2024-03-04T00:00:00Z"
DATABASE_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The truth sources and prediction files, written once for every test here."""
    folder = tmp_path_factory.mktemp("score-formats")
    config = write_config(folder / "config.yaml")
    node = folder / "fleet.db"
    done = run_main(
        ["--config", str(config), "--identity", str(ROOT / "identities"), "--db", str(node),
         "--backfill", "2h", "--start", START, "--seed", "42"],
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(node, folder / "copy.db")  # a sync marks the rows it sent: sync a copy
    central = folder / "central.db"
    synced = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "sync", "--once", "--sink", f"sqlite:///{central}",
         str(folder / "copy.db")],
        cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr[-2000:]
    with sqlite3.connect(node) as conn:
        readings = conn.execute(
            "SELECT sensor_id, timestamp, anomaly_flag FROM sensor_readings ORDER BY id"
        ).fetchall()
    rows = classic_predictions(readings, np.random.default_rng(7))
    write_all(folder, "classic", rows)
    write_all(folder, "jittered", jittered(rows, np.random.default_rng(8)))
    write_all(folder, "epoch", epoch_seconds(rows))
    write_all(folder, "scores", [{k: v for k, v in r.items() if k != "flag"} for r in rows])
    hidden_labels(folder)
    return folder


def classic_predictions(readings: list[tuple[str, str, int]], rng: Any) -> list[dict[str, Any]]:
    """One prediction per reading, less a few, plus duplicates, unknown sensors, predictions
    matching no reading, and scores spelt many ways (and NaN)."""
    rows: list[dict[str, Any]] = []
    first_sensor = readings[0][0]
    for index, (sensor, stamp, flag) in enumerate(readings):
        if sensor == first_sensor and index < 400:
            continue  # this sensor's scored span starts later
        draw = rng.random()
        if draw < 0.02:
            continue  # a reading without a prediction
        value = float(rng.random() * 0.7 + 0.3 * flag)
        spelling = index % 7
        score: Any = (
            f"{value:.3f}" if spelling < 3
            else repr(value) if spelling == 3
            else f"{value:.2e}" if spelling == 4
            else f"{value * 100:.0f}" if spelling == 5
            else f"-{value:.4f}"
        )  # fmt: skip
        if draw > 0.995:
            score = "nan"
        row = {"sensor_id": sensor, "timestamp": stamp, "score": score, "flag": int(value >= 0.8)}
        rows.append(row)
        if 0.02 <= draw < 0.03:
            rows.append({**row, "flag": 1 - row["flag"]})  # a duplicate: the first one counts
    rows.append({"sensor_id": "GHOST_1", "timestamp": readings[5][1], "score": "0.9", "flag": 1})
    rows.append({"sensor_id": readings[0][0], "timestamp": "1999-01-01T00:00:00Z", "score": "1",
                 "flag": 1})  # fmt: skip
    return rows


def jittered(rows: list[dict[str, Any]], rng: Any) -> list[dict[str, Any]]:
    """The same predictions, every other one with its timestamp off by up to 0.4 s, and
    spelt with an offset here and there (for --tolerance 500ms)."""
    from datetime import datetime, timedelta

    out = []
    for index, row in enumerate(rows):
        moment = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
        if index % 2:
            moment += timedelta(microseconds=int(rng.integers(-400_000, 400_000)))
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if index % 50 == 0:
            stamp = moment.isoformat()  # +00:00
        out.append({**row, "timestamp": stamp})
    return out


def epoch_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same predictions with timestamps in seconds since 1970."""
    from datetime import datetime

    def seconds(stamp: str) -> str:
        return f"{datetime.fromisoformat(stamp.replace('Z', '+00:00')).timestamp():.6f}"

    return [{**row, "timestamp": seconds(row["timestamp"])} for row in rows]


def write_all(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """``rows`` as CSV, quoted CSV, JSON lines and an SQLite table."""
    names = list(rows[0])
    with (folder / f"{name}.csv").open("w", newline="") as plain:
        plain.write(",".join(names) + "\n")
        for row in rows:
            plain.write(",".join(str(row[n]) for n in names) + "\n")
    with (folder / f"{name}.quoted.csv").open("w", newline="") as quoted:
        writer = csv.DictWriter(quoted, names, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with (folder / f"{name}.jsonl").open("w") as lines:
        for row in rows:
            record = {**row, "score": json.loads(row["score"]) if row["score"] != "nan" else None}
            lines.write(json.dumps(record) + "\n")
    with sqlite3.connect(folder / f"{name}.sqlite") as conn:
        conn.execute(f"CREATE TABLE predictions ({', '.join(names)})")
        conn.executemany(
            f"INSERT INTO predictions VALUES ({', '.join('?' * len(names))})",
            [[float(r[n]) if n == "score" else r[n] for n in names] for r in rows],
        )


def hidden_labels(folder: Path) -> None:
    """An equipment node database whose labels are hidden in ``plant.truth.db`` beside it:
    two compressors, a reading a second, a few faults each; and predictions of them."""
    layout = equipment_layout("compressor", [ChannelColumn("pressure_bar", "bar")], False)
    rng = np.random.default_rng(9)
    readings, labels = [], []
    for second in range(3000):
        for machine in ("COMP_1", "COMP_2"):
            stamp = f"2024-03-04T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
            stamp = stamp[:-1] + f".{second % 3 * 250000:06d}Z"
            phase = (second + (700 if machine == "COMP_2" else 0)) % 1000
            fault = "leak" if 600 <= phase < 650 else "bearing_wear" if phase > 950 else None
            readings.append((stamp, machine, 7.0 + rng.normal(), "GA-30", "2.1"))
            rul = float(1000 - phase) * 60 if fault == "bearing_wear" else None
            instrument = "sensor_drift" if fault is None and 200 <= phase < 210 else None
            labels.append((machine, stamp, fault, instrument, rul))
    with sqlite3.connect(folder / "plant.db") as conn:
        conn.executescript(layout.node_schema_sql())
        conn.execute(
            "CREATE TABLE sensorfleet_meta (singleton INTEGER PRIMARY KEY, database_id TEXT, "
            "created_at TEXT, schema_version INTEGER)"
        )
        conn.execute("INSERT INTO sensorfleet_meta VALUES (1, ?, '', 1)", (DATABASE_ID,))
        conn.executemany(
            f"INSERT INTO {layout.table} (timestamp, sensor_id, pressure_bar, model, "
            "firmware_version) VALUES (?, ?, ?, ?, ?)",
            readings,
        )
    with sqlite3.connect(folder / "plant.truth.db") as conn:
        conn.execute(truth_schema_sql("compressor").format(schema="main"))
        conn.executemany(
            "INSERT INTO compressor_truth (database_id, reading_id, sensor_id, timestamp, "
            "fault, instrument_fault, rul_seconds, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'run')",
            [(DATABASE_ID, i + 1, *label) for i, label in enumerate(labels)],
        )
    with (folder / "plant.csv").open("w") as out:
        out.write("sensor_id,timestamp,score,flag,fault,rul_seconds\n")
        for index, (machine, stamp, fault, _, rul) in enumerate(labels):
            if index % 97 == 0:
                continue
            guess = fault if rng.random() < 0.7 else ("leak" if fault is None else "")
            score = rng.random() * 0.5 + (0.4 if fault else 0.0)
            life = "" if rul is None else f"{rul + rng.normal() * 600:.1f}"
            out.write(f"{machine},{stamp},{score:.4f},{int(score > 0.6)},{guess or ''},{life}\n")


CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: truth, predictions, options
    "node-csv": ("fleet.db", "classic.csv", {}),
    "node-quoted": ("fleet.db", "classic.quoted.csv", {}),
    "node-jsonl": ("fleet.db", "classic.jsonl", {}),
    "node-sqlite": ("fleet.db", "classic.sqlite", {}),
    "central-csv": ("central.db", "classic.csv", {}),
    "node-scores-csv": ("fleet.db", "scores.csv", {}),
    "node-scores-sqlite": ("fleet.db", "scores.sqlite", {"threshold": 0.5}),
    "node-jittered-csv": ("fleet.db", "jittered.csv", {"tolerance_seconds": 0.5}),
    "node-jittered-jsonl": ("fleet.db", "jittered.jsonl", {"tolerance_seconds": 0.5}),
    "node-jittered-exact": ("fleet.db", "jittered.csv", {}),
    "node-epoch-csv": ("fleet.db", "epoch.csv", {}),
    "node-epoch-sqlite": ("fleet.db", "epoch.sqlite", {}),
    "hidden-node-csv": ("plant.db", "plant.csv", {}),
    "hidden-truth-file-csv": ("plant.truth.db", "plant.csv", {"rul_unit_seconds": 60.0}),
}
# Formats of the same predictions that must score identically (the file name aside).
SAME = (
    ("node-csv", "node-quoted", "node-jsonl", "node-sqlite"),
    ("node-jittered-csv", "node-jittered-jsonl"),
    ("node-epoch-csv", "node-epoch-sqlite"),
)


def scored(folder: Path, name: str) -> dict[str, Any]:
    truth, predictions, options = CASES[name]
    request = ScoreRequest(
        str(folder / truth), str(folder / predictions), options=ScoreOptions(**options)
    )
    text = render_json(score_detectors(request)).replace(str(folder), "CASES")
    result: dict[str, Any] = json.loads(text)
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_same_json_as_before(cases: Path, name: str) -> None:
    """Every figure and count is what the readers gave before they were made fast."""
    result = scored(cases, name)
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("SENSORFLEET_WRITE_SCORE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    assert result == json.loads(golden.read_text())


@pytest.mark.parametrize("names", SAME, ids=lambda names: names[0])
def test_formats_score_alike(cases: Path, names: tuple[str, ...]) -> None:
    """CSV, quoted CSV, JSON lines and SQLite give the same figures for the same rows."""
    results = [scored(cases, name) for name in names]
    for result in results:
        result.pop("detector", None)
        for entry in result.get("detectors", []):
            entry.pop("detector", None)
    assert all(r == results[0] for r in results[1:])


@pytest.mark.parametrize("name", ["node-sqlite", "central-csv", "hidden-node-csv"])
def test_same_json_read_in_small_slices(
    cases: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables read a few thousand rows at a time, by several threads at once, in one
    thread, score as when read in one piece."""
    monkeypatch.setattr(tables, "ROWS_PER_QUERY", 2_345)
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert scored(cases, name) == golden
    monkeypatch.setattr(tables, "reader_threads", lambda: 1)
    assert scored(cases, name) == golden
