"""`sensorfleet sync --features`: stream records of node-written files gain calendar
features, the reference ratios where a table has the channels, and each sensor's 1-minute
rolling mean and standard deviation per channel, equal to a computation from the node's
own rows however the rows are split into batches or sent again."""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import ROOT, write_config, write_identity
from servers import Receiver, node_env
from test_sync_cli import sync

http_receiver = servers.http_receiver

# The ratios of the reference process data and the channels each model gives them.
RATIOS = {
    "sensor_readings": {},
    "compressor_readings": {
        "vibration_power_ratio": ("vibration_mm_s", "/", "power_kw"),
        "flow_pressure_product": ("flow_m3_min", "*", "pressure_bar"),
    },
    "process_machine_readings": {
        "temp_pressure_ratio": ("temperature_c", "/", "pressure_bar"),
        "vibration_power_ratio": ("vibration_mm_s", "/", "power_consumption_kw"),
        "flow_pressure_product": ("flow_rate_l_min", "*", "pressure_bar"),
    },
}


@pytest.fixture(scope="module")
def node_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node file of classic sensors A and B, compressor C1 and process machine P1 with
    5 minutes of history from a Saturday night, 23:58 UTC."""
    folder = tmp_path_factory.mktemp("features")
    write_config(folder / "config.yaml")
    write_identity(folder / "a.json", id="A")
    write_identity(folder / "b.json", id="B")
    write_identity(folder / "c.json", id="C1", type="compressor", location="Hall 2")
    write_identity(folder / "p.json", id="P1", type="process_machine", location="Hall 3")
    db = folder / "node.db"
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--config", "config.yaml", "--identity",
         "a.json", "b.json", "c.json", "p.json", "--db", str(db), "--seed", "7",
         "--backfill", "5m", "--start", "2026-05-02T23:58:00Z"],
        cwd=folder, env=node_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return db


def node_tables(db: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows as mappings, in id order, with the layout's channel names."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        tables = ["sensor_readings"] + [
            row[0] for row in conn.execute("SELECT name FROM sensorfleet_tables ORDER BY name")
        ]
        found = {}
        for table in dict.fromkeys(tables):
            found[table] = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]
        channels = {
            row[0]: [c["name"] for c in json.loads(row[1]) if c["role"] == "channel"]
            for row in conn.execute("SELECT name, layout FROM sensorfleet_tables")
        }
    channels.setdefault("sensor_readings", ["temperature", "vibration", "voltage"])
    return {
        table: [{**r, "_channels": channels[table]} for r in rows] for table, rows in found.items()
    }


def expected_features(table: str, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The features of each row, computed directly from the node's rows."""
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        moment = datetime.fromisoformat(row["timestamp"]).astimezone(UTC)
        features: dict[str, Any] = {
            "hour": moment.hour,
            "day_of_week": moment.weekday(),
            "month": moment.month,
            "is_weekend": int(moment.weekday() >= 5),
            "is_night_shift": int(moment.hour >= 22 or moment.hour < 6),
        }
        for name, (a, operator, b) in RATIOS[table].items():
            x, y = row[a], row[b]
            if x is None or y is None or (operator == "/" and y == 0):
                features[name] = None
            else:
                features[name] = x * y if operator == "*" else x / y
        t = moment.timestamp()
        window = [
            other for other in rows
            if other["sensor_id"] == row["sensor_id"]
            and t - 60 < datetime.fromisoformat(other["timestamp"]).timestamp() <= t
        ]  # fmt: skip
        for channel in row["_channels"]:
            values = [other[channel] for other in window if other[channel] is not None]
            features[f"{channel}_avg_1min"] = statistics.fmean(values) if values else None
            features[f"{channel}_std_1min"] = statistics.pstdev(values) if values else None
        found[row["id"]] = features
    return found


def check(records: list[dict[str, Any]], db: Path) -> None:
    """Each record carries exactly the features computed from the node's rows."""
    tables = node_tables(db)
    by_table: dict[str, dict[int, dict[str, Any]]] = {}
    for record in records:
        table = record.get("table", "sensor_readings")
        assert record["source_row_id"] not in by_table.setdefault(table, {}), "sent twice"
        by_table[table][record["source_row_id"]] = record
    assert set(by_table) == set(tables)
    for table, rows in tables.items():
        assert sorted(by_table[table]) == [row["id"] for row in rows]
        for row_id, features in expected_features(table, rows).items():
            record = by_table[table][row_id]
            for name, value in features.items():
                got = record[name]
                if value is None or isinstance(value, int):
                    assert got == value, (table, row_id, name)
                else:
                    assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), (
                        table, row_id, name, got, value,
                    )  # fmt: skip
        if not RATIOS[table]:
            assert "temp_pressure_ratio" not in by_table[table][rows[0]["id"]]


@pytest.mark.parametrize("sink", ["-", "jsonl"])
def test_records_carry_the_features_of_the_node_rows(
    node_file: Path, sink: str, tmp_path: Path
) -> None:
    """Through stdout and JSONL files, in batches of 37 rows, every record of every table
    has its calendar features, ratios and rolling window equal to the direct
    computation from the node's rows, across midnight into a Sunday."""
    url = sink if sink == "-" else f"jsonl:///{tmp_path / 'out'}"
    cursor = tmp_path / "cursor.json"
    result = sync(str(node_file), "--once", "--sink", url, "--features", "all",
                  "--batch-size", "37", "--cursor", str(cursor), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    if sink == "-":
        lines = result.stdout.splitlines()
    else:
        lines = [line for f in sorted((tmp_path / "out").iterdir())
                 for line in f.read_text().splitlines()]  # fmt: skip
    records = [json.loads(line) for line in lines]
    check(records, node_file)
    days = {(r["day_of_week"], r["is_night_shift"], r["is_weekend"]) for r in records}
    assert {(5, 1, 1), (6, 1, 1)} <= days  # Saturday 23:58 and Sunday 00:0x


def test_a_batch_sent_again_counts_its_readings_once(
    node_file: Path, http_receiver: Receiver, tmp_path: Path
) -> None:
    """When the sink refuses a batch and it is read and sent again, its rows carry the
    same features and the rolling windows count none of them twice."""
    # Every try of the fourth batch's first write, and of the next ones: the rows of a
    # batch in the middle, and the one read behind it, are read and sent again.
    http_receiver.fail_after, http_receiver.fail_next = 3, 9
    result = sync(str(node_file), "--once", "--sink", http_receiver.url, "--features",
                  "rolling,time,ratios", "--batch-size", "50", "--cursor",
                  str(tmp_path / "cursor.json"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sink write failed" in result.stderr
    check(http_receiver.rows(), node_file)


def test_only_the_chosen_sets_are_added(node_file: Path, tmp_path: Path) -> None:
    """--features time adds the calendar fields alone; without the flag records are the
    node's columns as before."""
    plain = sync(str(node_file), "--once", "--sink", "-", "--cursor", str(tmp_path / "a"),
                 cwd=tmp_path)  # fmt: skip
    timed = sync(str(node_file), "--once", "--sink", "-", "--features", "time", "--cursor",
                 str(tmp_path / "b"), cwd=tmp_path)  # fmt: skip
    before = [json.loads(line) for line in plain.stdout.splitlines()]
    after = [json.loads(line) for line in timed.stdout.splitlines()]
    calendar = {"hour", "day_of_week", "month", "is_weekend", "is_night_shift"}
    for old, new in zip(before, after, strict=True):
        assert set(new) - set(old) == calendar
        assert {k: new[k] for k in old if k != "received_at"} == {
            k: v for k, v in old.items() if k != "received_at"
        }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--features", "time,weather"], "--features: expected a comma-separated list"),
        (["--features", "all", "--sink", "sqlite:///c.db"], "derived features go to JSON"),
        (["--features", "rolling", "--sink", "csv:///out"], "derived features go to JSON"),
    ],
)
def test_features_a_sink_cannot_carry_are_refused(
    node_file: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    """An unknown feature set, or features for a sink that stores the node's columns as
    they are, is exit 2 with one line."""
    result = sync(str(node_file), "--once", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and expected in lines[0], result.stderr
