"""Reading the truth: the classic sensor's labels, an equipment table, a labels file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import run_main, write_config, write_identity

from sensorfleet.errors import InputError
from sensorfleet.node.layout import ChannelColumn, equipment_layout
from sensorfleet.score.evaluate import ScoreOptions, evaluate
from sensorfleet.score.match import align
from sensorfleet.score.predictions import read_predictions
from sensorfleet.score.truth import read_truth

START = "2024-03-01T00:00:00Z"


def equipment_db(path: Path) -> Path:
    """A compressor table laid out as an equipment model writes it: 100 readings a minute
    apart, a bearing fault at 40-59 with RUL counting down, a leak at 80-84."""
    layout = equipment_layout(
        "compressor", [ChannelColumn("pressure_bar", "bar"), ChannelColumn("power_kw", "kW")]
    )
    with sqlite3.connect(path) as conn:
        conn.executescript(layout.node_schema_sql())
        for i in range(100):
            fault = "bearing_wear" if 40 <= i < 60 else "leak" if 80 <= i < 85 else None
            rul = (60 - i) * 60.0 if fault == "bearing_wear" else None
            row = {
                "timestamp": f"2024-03-01T{i // 60:02d}:{i % 60:02d}:00.000000Z",
                "sensor_id": "COMP_1",
                "pressure_bar": 7.0 + 0.01 * i,
                "power_kw": 30.0,
                "state": "running",
                "fault": fault,
                "health": 1.0,
                "rul_seconds": rul,
                "maintenance": 0,
                "firmware_version": "2.1",
                "model": "GA-30",
            }
            names = [n for n in layout.names if n in row]
            conn.execute(
                f"INSERT INTO {layout.table} ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )
    return path


def test_equipment_table_faults_and_rul(tmp_path: Path) -> None:
    """Faults become episodes by fault type, and predicted RUL is compared with the
    table's rul_seconds; the confusion matrix pairs true and predicted faults."""
    db = equipment_db(tmp_path / "plant.db")
    truth = read_truth(str(db))
    assert truth.scheme == "fault" and truth.sensors == ["COMP_1"]
    assert truth.anomaly.sum() == 25 and truth.has_rul
    lines = ["sensor_id,timestamp,flag,fault,rul_seconds"]
    for i in range(100):
        stamp = f"2024-03-01T{i // 60:02d}:{i % 60:02d}:00Z"
        if 40 <= i < 60:
            lines.append(f"COMP_1,{stamp},1,bearing_wear,{(60 - i) * 60 + 600}")  # 10 min late
        elif 80 <= i < 83:
            lines.append(f"COMP_1,{stamp},1,bearing_wear,")  # right time, wrong fault
        else:
            lines.append(f"COMP_1,{stamp},0,,")
    predictions = tmp_path / "p.csv"
    predictions.write_text("\n".join(lines) + "\n")
    aligned = align(truth, read_predictions(str(predictions)), 0)
    scored = evaluate(truth, aligned, ScoreOptions(rul_unit_seconds=60.0), "p")
    assert set(scored.breakdowns["fault"]) == {"bearing_wear", "leak"}
    assert scored.breakdowns["fault"]["bearing_wear"].range.recall == 1.0
    assert scored.breakdowns["fault"]["leak"].range.recall == pytest.approx(3 / 5)
    assert scored.breakdowns["model"]["GA-30"].readings == 100
    rul = scored.overall.rul
    assert rul is not None and rul.count == 20 and rul.mae_seconds == 600.0
    assert rul.phm08_mean == pytest.approx(np.exp(1.0) - 1)  # 10 minutes late, unit 1 min
    confusion = scored.overall.confusion
    assert confusion is not None
    table = dict(zip(confusion.true_labels, confusion.counts, strict=True))
    columns = confusion.predicted_labels
    assert table["leak"][columns.index("bearing_wear")] == 3
    assert table["leak"][columns.index("normal")] == 2
    assert table["bearing_wear"][columns.index("bearing_wear")] == 20
    assert table["normal"][columns.index("normal")] == 75


def test_hidden_labels_file(tmp_path: Path) -> None:
    """A labels file holding only sensor_id, timestamp and the faults is a truth source; an
    instrument fault is an anomaly too, named after it where no machine fault is active."""
    path = tmp_path / "labels.csv"
    path.write_text(
        "sensor_id,timestamp,fault,instrument_fault\n"
        "P1,2024-03-01T00:00:00Z,,\nP1,2024-03-01T00:00:01Z,jam,\n"
        "P1,2024-03-01T00:00:02Z,jam,dropout\nP1,2024-03-01T00:00:03Z,none,dropout\n"
        "P1,2024-03-01T00:00:04Z,,\n"
    )
    truth = read_truth(str(path))
    assert truth.anomaly.tolist() == [False, True, True, True, False]
    assert [truth.kinds[k] for k in truth.kind] == ["", "jam", "jam", "dropout", ""]


def test_classic_database_counts_missing_data_rows(tmp_path: Path) -> None:
    """In a node database, missing-data rows (NULL values, flagged) are anomalies of type
    missing_data, and model and firmware come from the rows."""
    config = write_config(
        tmp_path / "config.yaml",
        anomalies={"probability": 0.3, "types": {t: {"enabled": t == "missing_data"} for t in
                   ("spike", "trend", "pattern", "noise", "missing_data")}},
    )  # fmt: skip
    identity = write_identity(tmp_path / "id.json", id="S1", model="TempVibe-1000")
    db = tmp_path / "node.db"
    done = run_main(
        ["--config", str(config), "--identity", str(identity), "--db", str(db),
         "--backfill", "2h", "--start", START, "--seed", "3"],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    truth = read_truth(str(db))
    with sqlite3.connect(db) as conn:
        nulls = conn.execute(
            "SELECT count(*) FROM sensor_readings WHERE temperature IS NULL AND anomaly_flag = 1 "
            "AND anomaly_type = 'missing_data'"
        ).fetchone()[0]
    assert nulls > 0 and int(truth.anomaly.sum()) == nulls
    assert truth.kinds == ["", "missing_data"]
    assert truth.models == ["TempVibe-1000"] and truth.firmwares == ["1.4"]


def test_truth_without_labels_is_refused(tmp_path: Path) -> None:
    """A file with no label columns is one problem line naming what was expected."""
    path = tmp_path / "plain.csv"
    path.write_text("sensor_id,timestamp,temperature\nA,2024-03-01T00:00:00Z,20\n")
    with pytest.raises(InputError, match=r"expected sensor_id, timestamp and labels"):
        read_truth(str(path))


def test_readings_out_of_time_order_are_sorted(tmp_path: Path) -> None:
    """A labels file whose rows are not in time order is read sorted by sensor, then time."""
    path = tmp_path / "labels.csv"
    path.write_text(
        "sensor_id,timestamp,anomaly_flag,anomaly_type\n"
        "B,2024-03-01T00:00:02Z,0,\nA,2024-03-01T00:00:01Z,1,spike\n"
        "B,2024-03-01T00:00:00Z,1,noise\nA,2024-03-01T00:00:00Z,0,\n"
    )
    truth = read_truth(str(path))
    assert [truth.sensors[s] for s in truth.sensor] == ["B", "B", "A", "A"]
    assert (truth.time // 10**6 % 60).tolist() == [0, 2, 0, 1]
    assert truth.anomaly.tolist() == [True, False, False, True]


def test_hidden_labels_pair_with_the_truth_file(tmp_path: Path) -> None:
    """An equipment node run with hidden labels: scoring its database finds the truth file
    beside it and pairs each reading with its labels (the model and the channels from the
    database, the faults from the truth file); the truth file alone gives the same labels;
    without it, one line says where it was looked for."""
    catalogue = tmp_path / "faulty.yaml"
    catalogue.write_text("models:\n  compressor:\n    faults:\n      leak: {onset_per_hour: 0.5}\n")
    config = write_config(
        tmp_path / "config.yaml",
        labels={"mode": "hidden"},
        equipment={"catalogues": [str(catalogue)]},
    )
    identity = write_identity(tmp_path / "id.json", id="COMP_1", type="compressor", model="GA-30")
    db = tmp_path / "plant.db"
    done = run_main(
        ["--config", str(config), "--identity", str(identity), "--db", str(db),
         "--backfill", "6h", "--start", START, "--seed", "5"],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    truth_file = tmp_path / "plant.truth.db"
    with sqlite3.connect(truth_file) as conn:
        faulty = conn.execute("SELECT count(*) FROM compressor_truth WHERE fault IS NOT NULL")
        expected = faulty.fetchone()[0]
    assert expected > 0
    paired = read_truth(str(db), channels=True)
    alone = read_truth(str(truth_file))
    assert int(paired.anomaly.sum()) == int(alone.anomaly.sum()) == expected
    assert (paired.time == alone.time).all() and paired.scheme == "fault"
    assert paired.models == ["GA-30"] and "pressure_bar" in paired.channels
    truth_file.rename(tmp_path / "elsewhere.db")
    with pytest.raises(InputError, match=r"labels are hidden, and there is no truth file"):
        read_truth(str(db))


def test_fault_and_rul_sections_render(tmp_path: Path) -> None:
    """With fault and rul_seconds predictions, the text, JSON and HTML outputs carry the
    confusion matrix and the RUL errors."""
    import json

    from sensorfleet.score.render import render_html, render_json, render_text

    db = equipment_db(tmp_path / "plant.db")
    truth = read_truth(str(db))
    lines = ["sensor_id,timestamp,flag,fault,rul_seconds"]
    for i in range(100):
        stamp = f"2024-03-01T{i // 60:02d}:{i % 60:02d}:00Z"
        fault = "bearing_wear" if 40 <= i < 60 else ""
        lines.append(f"COMP_1,{stamp},{int(bool(fault))},{fault},{(60 - i) * 60 if fault else ''}")
    predictions = tmp_path / "p.csv"
    predictions.write_text("\n".join(lines) + "\n")
    aligned = align(truth, read_predictions(str(predictions)), 0)
    evaluations = [evaluate(truth, aligned, ScoreOptions(), "p.csv")]
    text = render_text(evaluations)
    assert "Confusion of types" in text and "Remaining useful life" in text
    data = json.loads(render_json(evaluations))
    assert data["overall"]["rul"]["mae_seconds"] == 0.0
    assert data["by_fault"]["leak"]["point"]["recall"] == 0.0
    assert data["overall"]["confusion"]["true_labels"] == ["normal", "bearing_wear", "leak"]
    page = render_html(evaluations)
    assert "Remaining useful life" in page and "Confusion of types" in page
