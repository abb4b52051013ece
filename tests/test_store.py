"""The SQLite store: exact schema, cheap sync polls, ids that continue, safe sharing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sensorfleet.node.config import Database
from sensorfleet.node.store import (
    INSERT_SQL,
    SCHEMA_VERSION,
    ForeignTableError,
    Store,
    ensure_schema,
    insert_rows,
    open_connection,
)

COLUMNS = [
    "id",
    "timestamp",
    "sensor_id",
    "temperature",
    "vibration",
    "voltage",
    "status_code",
    "anomaly_flag",
    "anomaly_type",
    "firmware_version",
    "model",
    "manufacturer",
    "location",
    "synced",
]


def row(i: int, sensor: str = "S1") -> tuple[object, ...]:
    return (
        f"2024-01-01T00:00:{i % 60:02d}.000000Z",
        sensor,
        65.0,
        2.5,
        12.0,
        0,
        0,
        None,
        "1.4",
        "TempVibe-2000",
        "SensorTech",
        "Lab",
    )


def open_store(path: Path, **settings: object) -> Store:
    store = Store(path, Database(**settings))  # type: ignore[arg-type]
    store.open()
    return store


def test_schema_has_exactly_the_documented_columns(tmp_path: Path) -> None:
    """sensor_readings has the original columns in order, synced NOT NULL DEFAULT 0."""
    store = open_store(tmp_path / "a.db")
    info = store._current().execute("PRAGMA table_info(sensor_readings)").fetchall()
    assert [c[1] for c in info] == COLUMNS
    synced = info[-1]
    assert (synced[2], synced[3], synced[4]) == ("INTEGER", 1, "0")
    assert store._current().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store._current().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._current().execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental


def test_new_file_keeps_the_configured_synchronous_level(tmp_path: Path) -> None:
    """A new file's header is written without syncs, then rows use the configured level."""
    for level, code in (("full", 2), ("normal", 1), ("extra", 3)):
        path = tmp_path / f"{level}.db"
        conn = open_connection(path, Database(synchronous=level))
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == code
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        again = open_connection(path, Database(synchronous=level))  # an existing file
        assert again.execute("PRAGMA synchronous").fetchone()[0] == code
        again.close()


def test_unsynced_poll_uses_the_partial_index(tmp_path: Path) -> None:
    """`WHERE synced = 0 ORDER BY id LIMIT n` is answered from the partial index."""
    conn = open_connection(tmp_path / "a.db", Database())
    ensure_schema(conn)
    plan = " ".join(
        str(r)
        for r in conn.execute(
            "EXPLAIN QUERY PLAN "
            "SELECT * FROM sensor_readings WHERE synced = 0 ORDER BY id LIMIT 100"
        )
    )
    assert "idx_sensor_readings_unsynced" in plan
    assert "TEMP B-TREE" not in plan


def test_database_id_is_made_once_and_kept(tmp_path: Path) -> None:
    """Reopening a file keeps its random database id."""
    first = open_store(tmp_path / "a.db")
    second = open_store(tmp_path / "a.db")
    assert first.database_id and first.database_id == second.database_id
    assert open_store(tmp_path / "b.db").database_id != first.database_id


def test_reopen_appends_and_ids_continue(tmp_path: Path) -> None:
    """A restarted writer appends; ids keep rising and are never reused after deletes."""
    store = open_store(tmp_path / "a.db")
    store.write([row(i) for i in range(10)])
    store._current().execute("DELETE FROM sensor_readings WHERE id > 5")
    store.close()
    again = open_store(tmp_path / "a.db")
    again.write([row(i) for i in range(3)])
    cursor = again._current().execute("SELECT id FROM sensor_readings ORDER BY id")
    ids = [r[0] for r in cursor]
    assert ids == [1, 2, 3, 4, 5, 11, 12, 13]


def test_journal_mode_is_configurable(tmp_path: Path) -> None:
    """journal_mode: delete is honoured for filesystems where WAL is unsafe."""
    store = open_store(tmp_path / "a.db", journal_mode="delete")
    assert store._current().execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_legacy_file_without_synced_column_is_upgraded(tmp_path: Path) -> None:
    """A file from a simulator that dropped the sync flag gains it, rows intact."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, timestamp TEXT, "
            "sensor_id TEXT, temperature REAL, vibration REAL, voltage REAL, "
            "status_code INTEGER, anomaly_flag INTEGER, anomaly_type TEXT, "
            "firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT)"
        )
        conn.execute("INSERT INTO sensor_readings (timestamp, sensor_id) VALUES ('t', 'OLD')")
    store = open_store(path)
    rows = store._current().execute("SELECT sensor_id, synced FROM sensor_readings").fetchall()
    assert rows == [("OLD", 0)]


def test_nan_binds_as_null(tmp_path: Path) -> None:
    """Missing-data readings (NaN in arrays) are stored as SQL NULL."""
    conn = open_connection(tmp_path / "a.db", Database())
    ensure_schema(conn)
    nan_row = list(row(0))
    nan_row[2] = float("nan")
    insert_rows(conn, [tuple(nan_row)])
    assert conn.execute("SELECT temperature IS NULL FROM sensor_readings").fetchone() == (1,)


def test_concurrent_writers_on_one_file_lose_nothing(tmp_path: Path) -> None:
    """Four writers hammering one file in short transactions all land every row."""
    path = tmp_path / "shared.db"
    open_store(path).close()

    def writer(name: str) -> None:
        store = open_store(path, busy_timeout_ms=200, retry_attempts=50)
        for batch in range(40):
            store.write([row(i, name) for i in range(batch, batch + 50)])
        store.close()

    threads = [threading.Thread(target=writer, args=(f"W{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sqlite3.connect(path) as conn:
        counts = dict(conn.execute("SELECT sensor_id, COUNT(*) FROM sensor_readings GROUP BY 1"))
    assert counts == {f"W{i}": 2000 for i in range(4)}


def test_insert_statement_names_every_written_column() -> None:
    """The insert binds all columns except id and synced."""
    assert INSERT_SQL.count("?") == len(COLUMNS) - 2


def test_table_lacking_columns_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """An existing sensor_readings table without the reading columns is never altered."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, timestamp TEXT)")
    before = path.read_bytes()
    store = Store(path, Database())
    try:
        store.open()
    except ForeignTableError as exc:
        message = str(exc)
    else:
        raise AssertionError("a foreign table was accepted")
    assert "lacks columns sensor_id, temperature" in message and str(path) in message
    assert path.read_bytes() == before
