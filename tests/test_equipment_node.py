"""Equipment identities in a node: `<type>_readings` tables, backfill and live, mixed nodes,
the model's own interval, and ground truth inline or hidden in a truth file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from conftest import ROOT, query, run_main, write_config, write_identity
from nodeproc import NodeProcess, http_json, monitoring_url
from polling import wait_until
from test_reload import rename_over

from sensorfleet.equipment import load_catalogue
from sensorfleet.node.layout import LABEL_COLUMNS

START = "2026-03-02T06:00:00Z"
LABELS = [column.name for column in LABEL_COLUMNS]


def machine(path: Path, sensor_id: str, type_name: str, **fields: Any) -> Path:
    """An equipment identity file."""
    identity = {
        "location": "Factory A - Hall 2",
        "manufacturer": "SensorTech",
        "model": "GA-55",
        "firmware_version": "1.3",
        **fields,
    }
    return write_identity(path, id=sensor_id, type=type_name, **identity)


def backfill(
    tmp_path: Path, identities: list[Path], duration: str, *extra: str, db: str = "node.db"
) -> Path:
    """Backfill ``duration`` of history for ``identities`` with seed 7; the database."""
    args = ["--config", "config.yaml", "--identity", *map(str, identities), "--seed", "7"]
    args += ["--db", db, "--start", START, "--backfill", duration, *extra]
    if not (tmp_path / "config.yaml").exists():
        write_config(tmp_path / "config.yaml")
    result = run_main(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp_path / db


def columns(db: Path, table: str) -> list[str]:
    return [row[1] for row in query(db, f"PRAGMA table_info({table})")]


def test_backfill_writes_one_row_per_reading_and_one_column_per_channel(tmp_path: Path) -> None:
    """An hour of a compressor (1 s interval) is 3,600 rows in compressor_readings, one REAL
    column per channel, the labels and the identity fields, and plain SQL answers on it."""
    db = backfill(tmp_path, [machine(tmp_path / "c.json", "C1", "compressor")], "1h")
    model = load_catalogue().get("compressor")
    assert columns(db, "compressor_readings") == [
        "id", "timestamp", "sensor_id", *(c.name for c in model.channels), *LABELS,
        "firmware_version", "model", "manufacturer", "location", "synced",
    ]  # fmt: skip
    assert query(db, "SELECT count(*), min(timestamp), max(timestamp) FROM compressor_readings")[
        0
    ] == (3600, "2026-03-02T06:00:00.000000Z", "2026-03-02T06:59:59.000000Z")
    states = dict(query(db, "SELECT state, avg(power_kw) FROM compressor_readings GROUP BY 1"))
    assert set(states) <= set(model.states)
    assert states["loaded"] > states["unloaded"]  # loaded draws more power
    assert query(
        db,
        "SELECT DISTINCT sensor_id, firmware_version, model, manufacturer, location, synced "
        "FROM compressor_readings",
    ) == [("C1", "1.3", "GA-55", "SensorTech", "Factory A - Hall 2", 0)]
    assert query(db, "SELECT count(*) FROM sensor_readings") == [(0,)]
    indexes = {row[1] for row in query(db, "PRAGMA index_list(compressor_readings)")}
    assert "idx_compressor_readings_unsynced" in indexes


def test_same_seed_gives_the_same_equipment_rows(tmp_path: Path) -> None:
    """Two backfills with the same seed, identity and start write identical rows."""
    identity = machine(tmp_path / "m.json", "M1", "motor")
    first = backfill(tmp_path, [identity], "6h", db="a.db")
    second = backfill(tmp_path, [identity], "6h", db="b.db")
    sql = "SELECT * FROM motor_readings ORDER BY id"
    assert query(first, sql) == query(second, sql)
    assert len(query(first, sql)) == 6 * 360  # the motor's own 10 s interval


def test_readings_per_second_overrides_the_models_interval(tmp_path: Path) -> None:
    """--readings-per-second, when given, overrides a model's interval (10 s for a motor)."""
    identity = machine(tmp_path / "m.json", "M1", "motor")
    own = backfill(tmp_path, [identity], "10m", db="own.db")
    fast = backfill(tmp_path, [identity], "10m", "--readings-per-second", "2", db="fast.db")
    assert query(own, "SELECT count(*) FROM motor_readings") == [(60,)]
    assert query(fast, "SELECT count(*) FROM motor_readings") == [(1200,)]


def test_mixed_node_keeps_the_classic_rows_exactly(tmp_path: Path) -> None:
    """A node of a classic sensor, a compressor and a fan writes each type to its own
    table, and the classic sensor's rows are identical to those it writes alone."""
    classic = ROOT / "identities" / "factory_old_1.json"
    alone = backfill(tmp_path, [classic], "2h", db="alone.db")
    mixed = backfill(
        tmp_path,
        [
            classic,
            machine(tmp_path / "c.json", "C1", "compressor"),
            machine(tmp_path / "f.json", "F1", "fan"),
        ],
        "2h",
        db="mixed.db",
    )
    sql = "SELECT * FROM sensor_readings ORDER BY id"
    assert query(mixed, sql) == query(alone, sql)
    assert query(mixed, "SELECT sensor_id, count(*) FROM compressor_readings") == [("C1", 7200)]
    assert query(mixed, "SELECT sensor_id, count(*) FROM fan_readings") == [("F1", 1440)]


def test_live_run_paces_equipment_readings(tmp_path: Path) -> None:
    """A live run of 3 s at 5 readings/s writes exactly 15 fan rows, then exits 0."""
    write_config(tmp_path / "config.yaml")
    identity = machine(tmp_path / "f.json", "F1", "fan")
    result = run_main(
        [
            *("--config", "config.yaml", "--identity", str(identity), "--db", "live.db"),
            *("--run-time", "3", "--readings-per-second", "5"),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = query(tmp_path / "live.db", "SELECT state, rpm, health FROM fan_readings")
    assert len(rows) == 15
    assert all(state is not None and health is not None for state, _, health in rows)


def test_hidden_labels_live_only_in_the_truth_file(tmp_path: Path) -> None:
    """With labels hidden, the table has no ground-truth column; the truth file beside it
    holds one row per reading that joins back one to one, with exactly the labels and
    values an inline run of the same seed writes."""
    identity = machine(tmp_path / "c.json", "C1", "compressor")
    inline = backfill(tmp_path, [identity], "3h", db="inline.db")
    write_config(tmp_path / "config.yaml", labels={"mode": "hidden"})
    hidden = backfill(tmp_path, [identity], "3h", db="hidden.db")
    truth = tmp_path / "hidden.truth.db"
    assert not set(columns(hidden, "compressor_readings")) & set(LABELS)
    with sqlite3.connect(hidden) as conn:
        conn.execute("ATTACH DATABASE ? AS truth", (str(truth),))
        joined = conn.execute(
            "SELECT r.id, r.timestamp, r.power_kw, " + ", ".join(f"t.{c}" for c in LABELS) + " "
            "FROM compressor_readings AS r JOIN truth.compressor_truth AS t "
            "ON t.database_id = (SELECT database_id FROM sensorfleet_meta) "
            "AND t.reading_id = r.id AND t.sensor_id = r.sensor_id "
            "AND t.timestamp = r.timestamp ORDER BY r.id"
        ).fetchall()
        truth_rows = conn.execute("SELECT count(*) FROM truth.compressor_truth").fetchone()[0]
    expected = query(
        inline,
        "SELECT id, timestamp, power_kw, " + ", ".join(LABELS) + " FROM compressor_readings "
        "ORDER BY id",
    )
    assert len(joined) == truth_rows == 3 * 3600
    assert joined == expected


def test_hidden_labels_refuse_a_table_holding_inline_labels(tmp_path: Path) -> None:
    """A file whose equipment table carries inline labels is refused (exit 2, one line)
    when the labels are now hidden, and its table is left unchanged."""
    identity = machine(tmp_path / "c.json", "C1", "compressor")
    db = backfill(tmp_path, [identity], "10m")
    sql = "SELECT * FROM compressor_readings ORDER BY id"
    before = query(db, sql)
    write_config(tmp_path / "config.yaml", labels={"mode": "hidden"})
    result = run_main(
        [
            "--config",
            "config.yaml",
            "--identity",
            str(identity),
            "--db",
            "node.db",
            "--backfill",
            "1m",
        ],
        tmp_path,
    )
    assert result.returncode == 2
    assert "compressor_readings: holds inline labels, but labels.mode is hidden" in result.stderr
    assert "Traceback" not in result.stderr
    assert query(db, sql) == before
    assert columns(db, "compressor_readings")[-len(LABELS) - 5 : -5] == LABELS


def test_catalogue_edits_hot_reload(tmp_path: Path) -> None:
    """Editing a catalogue file named in config.yaml applies live: a broken edit is rejected
    naming the file, a valid one changes the machine's readings from the next one on, and
    the machine carries over (a fault in progress goes on)."""
    catalogue = tmp_path / "plant.yaml"
    catalogue.write_text("models:\n  compressor:\n    channels:\n      voltage_v: {target: 400}\n")
    write_config(
        tmp_path / "config.yaml",
        simulation={"readings_per_second": 20, "seed": 1},
        database={"flush_interval_seconds": 0.05},
        config_reload={"enabled": True, "check_interval_seconds": 0.5},
        equipment={"catalogues": ["plant.yaml"]},
        monitoring={"enabled": True, "host": "127.0.0.1", "port": 0},
    )
    identity = machine(tmp_path / "c.json", "C1", "compressor")
    db = tmp_path / "live.db"
    with NodeProcess(
        ["--config", "config.yaml", "--identity", str(identity), "--db", str(db)], tmp_path
    ) as node:
        node.wait_for("config reload started")
        url = monitoring_url(node)
        wait_until(lambda: _count(db) > 20, what="first rows")
        leak = {"fault": "leak", "severity": 0.5, "duration_seconds": 3600}
        assert http_json("POST", f"{url}/sensors/C1/faults", leak)[0] == 200
        rename_over(
            catalogue, "models:\n  compressor:\n    channels:\n      voltage_v: {targt: 1}\n"
        )
        rejected = node.wait_for("config reload rejected")
        rename_over(
            catalogue, "models:\n  compressor:\n    channels:\n      voltage_v: {target: 440}\n"
        )
        applied = node.wait_for("config reloaded")
        settled = _count(db)
        wait_until(lambda: _count(db) > settled + 40, what="rows after the edit")
        assert node.stop() == 0
    assert rejected["problem"].startswith(
        f"{catalogue}: models.compressor.channels.voltage_v.targt"
    )
    assert "equipment catalogue" in applied["changed"]
    volts = [v for (v,) in query(db, "SELECT voltage_v FROM compressor_readings ORDER BY id")]
    assert all(v < 420 for v in volts[:20])
    assert all(v > 420 for v in volts[-20:])
    last = query(db, "SELECT fault, fault_started_at FROM compressor_readings ORDER BY id DESC")
    first_leak = query(db, "SELECT min(timestamp) FROM compressor_readings WHERE fault = 'leak'")
    assert last[0] == ("leak", first_leak[0][0])  # the same leak, begun before the edit


def _count(db: Path) -> int:
    try:
        return int(query(db, "SELECT count(*) FROM compressor_readings")[0][0])
    except sqlite3.OperationalError:
        return 0


def test_the_documented_firmware_sql_runs_on_equipment_tables(tmp_path: Path) -> None:
    """The original documentation's sync-status query, pointed at compressor_readings, and
    the shipped fault-rate query answer per firmware from the identity fields on each row."""
    identities = [
        machine(tmp_path / "c1.json", "C1", "compressor"),
        machine(tmp_path / "c2.json", "C2", "compressor", firmware_version="1.4"),
    ]
    db = backfill(tmp_path, identities, "1h")
    sync_status = (ROOT / "queries" / "sync_status.sql").read_text()
    rows = query(db, sync_status.replace("FROM sensor_readings", "FROM compressor_readings"))
    assert sorted(rows) == [("1.3", 3600, 0, 0.0), ("1.4", 3600, 0, 0.0)]
    faults = query(db, (ROOT / "queries" / "fault_rates_by_firmware.sql").read_text())
    assert sorted(row[:2] for row in faults) == [("1.3", 3600), ("1.4", 3600)]
    assert all(0 <= row[3] <= 100 for row in faults)
