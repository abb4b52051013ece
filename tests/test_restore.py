"""A backup restored over a node's file never makes one central key name two readings.

Real node processes, a real SQLite online backup renamed over the live file, and real
``sensorfleet sync`` runs into a central SQLite file and a real PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import log_events, query, run_main, write_config, write_identity
from nodeproc import (
    NodeProcess,
    count_rows,
    http,
    monitoring_url,
    rows,
    start_node,
    wait_until,
)
from servers import node_env
from structlog.testing import capture_logs

from sensorfleet.node.config import Database
from sensorfleet.node.store import Store

postgres_server = servers.postgres_server
postgres_url = servers.postgres_url

Readings = Callable[[], tuple[list[str], list[str]]]

# The central table as the previous version created it (before readings with a taken
# key were kept beside it): a store written by that version must keep working.
OLD_SQLITE_CENTRAL = """
CREATE TABLE sensor_readings (
    database_id TEXT NOT NULL, source_row_id INTEGER NOT NULL,
    timestamp TEXT NOT NULL, sensor_id TEXT NOT NULL, temperature REAL, vibration REAL,
    voltage REAL, status_code INTEGER NOT NULL DEFAULT 0, anomaly_flag INTEGER NOT NULL DEFAULT 0,
    anomaly_type TEXT, firmware_version TEXT, model TEXT, manufacturer TEXT, location TEXT,
    received_at TEXT NOT NULL, PRIMARY KEY (database_id, source_row_id)
) WITHOUT ROWID;
CREATE INDEX idx_sensor_readings_sensor_time ON sensor_readings(sensor_id, timestamp);
"""
OLD_POSTGRES_CENTRAL = """
CREATE TABLE sensor_readings (
    database_id text NOT NULL, source_row_id bigint NOT NULL,
    "timestamp" timestamptz NOT NULL, sensor_id text NOT NULL,
    temperature double precision, vibration double precision, voltage double precision,
    status_code integer NOT NULL DEFAULT 0, anomaly_flag integer NOT NULL DEFAULT 0,
    anomaly_type text, firmware_version text, model text, manufacturer text, location text,
    received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (database_id, source_row_id)
)
"""


def sync_once(
    cwd: Path, sink: str, *sources: Path, cursor: str | None = None
) -> list[dict[str, Any]]:
    """``sensorfleet sync SOURCES --once`` (read-only with ``cursor``) to completion; its JSON
    log events."""
    command = [sys.executable, "-m", "sensorfleet", "sync", *map(str, sources), "--sink", sink]
    command += ["--once", "--log-format", "json", *(["--cursor", cursor] if cursor else [])]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def backup(db: Path, target: Path) -> None:
    """What `sqlite3 db ".backup target"` does: SQLite's online backup of a live file."""
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)


def stamps(*dbs: Path) -> set[str]:
    return {r[0] for db in dbs for r in rows(db, "timestamp")}


def central(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Readings]:
    """A central store already holding the previous version's table; its URL and a reader of
    (timestamps in the table, timestamps kept beside it)."""
    if kind == "sqlite":
        path = tmp_path / "central.db"
        with closing(sqlite3.connect(path)) as conn:
            conn.executescript(OLD_SQLITE_CENTRAL)

        def read_sqlite() -> tuple[list[str], list[str]]:
            with closing(sqlite3.connect(path)) as conn:
                main = [r[0] for r in conn.execute("SELECT timestamp FROM sensor_readings")]
                kept = [
                    r[0] for r in conn.execute("SELECT timestamp FROM sensor_readings_conflicts")
                ]
            return main, kept

        return "sqlite:///central.db", read_sqlite
    import psycopg

    url = request.getfixturevalue("postgres_url")
    if kind == "postgresql-daily":  # a table split by day is new with its partitioning
        return url + "?partition=daily", partial(read_postgres, url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(OLD_POSTGRES_CENTRAL)
    return url, partial(read_postgres, url)


def read_postgres(url: str) -> tuple[list[str], list[str]]:
    """Timestamps in a central PostgreSQL table and kept beside it, as the node writes them."""
    import psycopg

    stamp = """to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    with psycopg.connect(url) as conn:
        main = [r[0] for r in conn.execute(f"SELECT {stamp} FROM sensor_readings")]
        kept = [r[0] for r in conn.execute(f"SELECT {stamp} FROM sensor_readings_conflicts")]
    return main, kept


def restore(backup_file: Path, db: Path) -> None:
    """Rename the backup over the file; with no node holding the file, the old file's WAL and
    shared memory go too (SQLite would replay that WAL into the restored file)."""
    os.replace(backup_file, db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def grow(node: NodeProcess, db: Path, rows_more: int) -> None:
    before = count_rows(db)
    wait_until(lambda: count_rows(db) >= before + rows_more, what=f"{rows_more} more rows")


@pytest.mark.parametrize("sink", ["sqlite", "postgresql"])
@pytest.mark.parametrize("node_during_restore", ["running", "stopped"])
def test_restored_backup_never_reuses_a_shipped_id(
    tmp_path: Path, request: pytest.FixtureRequest, sink: str, node_during_restore: str
) -> None:
    """After a restore (node running or stopped) new rows get ids no shipped reading had, so
    the central store ends with every reading of every file, each once, and no conflict."""
    db = tmp_path / "data.db"
    url, read_central = central(sink, tmp_path, request)
    node = start_node(tmp_path, {"monitoring": {"enabled": True, "port": 0}})
    try:
        grow(node, db, 50)
        backup(db, tmp_path / "backup.db")  # rows not shipped yet: the collector ships them next
        grow(node, db, 100)
        events = sync_once(tmp_path, url, db)
        if node_during_restore == "stopped":
            assert node.stop() == 0
            events += sync_once(tmp_path, url, db)  # the node's last rows shipped too
        before_restore = stamps(db)
        highest_before = rows(db, "max(id)")[0][0]
        if node_during_restore == "running":
            os.replace(tmp_path / "backup.db", db)
            replaced = node.wait_for("database file replaced, reopening")
            preserved = [Path(replaced["previous_preserved_as"])]
        else:
            restore(tmp_path / "backup.db", db)
            node = start_node(
                tmp_path, {"monitoring": {"enabled": True, "port": 0}}, wait_rows=False
            )
            preserved = []
        detected = node.wait_for("database restore detected")
        metrics = http("GET", f"{monitoring_url(node)}/metrics")[2].decode()
        assert "sensorfleet_database_restores_total 1.0" in metrics
        grow(node, db, 150)
        assert node.stop() == 0
    finally:
        node.kill()
    events += sync_once(tmp_path, url, db, *preserved)
    every_reading = before_restore | stamps(db, *preserved)
    stored, kept_beside = read_central()
    # Each reading once under its own key: none lost, none twice, nothing in conflict.
    assert sorted(stored) == sorted(every_reading)
    assert kept_beside == []
    assert not [e for e in events if e["event"] == "key holds a different reading"]
    first_new_id = min(r[0] for r in rows(db, "id", f"id > {detected['file_last_id']}"))
    assert first_new_id == detected["ids_handed_out"] + 1
    assert detected["table"] == "sensor_readings"
    assert detected["ids_handed_out"] >= highest_before > detected["file_last_id"]
    assert rows(db, "count(*)", "synced = 0") == [(0,)]


def write_with_a_backup(folder: Path, db: Path) -> None:
    """A node writes 50 rows, ``backup.db`` is taken, it writes 100 more and stops."""
    with start_node(folder) as node:
        grow(node, db, 50)
        backup(db, folder / "backup.db")
        grow(node, db, 100)
        assert node.stop() == 0


def write_more(folder: Path, db: Path) -> None:
    """The node starts again on ``db``, writes 150 rows and stops."""
    with start_node(folder) as node:
        grow(node, db, 150)
        assert node.stop() == 0


@pytest.mark.parametrize("sink", ["sqlite", "postgresql", "postgresql-daily"])
def test_sink_keeps_both_readings_when_a_key_is_reused(
    tmp_path: Path, request: pytest.FixtureRequest, sink: str
) -> None:
    """With the id floor lost too (only the file restored), reused ids reach the central
    store, which keeps both readings of each such key, logs the keys and counts them."""
    db = tmp_path / "data.db"
    url, read_central = central(sink, tmp_path, request)
    write_with_a_backup(tmp_path, db)
    events = sync_once(tmp_path, url, db)
    before_restore = stamps(db)
    restore(tmp_path / "backup.db", db)
    (tmp_path / "data.db-ids").unlink()  # e.g. the file alone copied to a new machine
    write_more(tmp_path, db)
    events += sync_once(tmp_path, url, db)
    stored, kept_beside = read_central()
    assert sorted(stored + kept_beside) == sorted(before_restore | stamps(db))
    assert kept_beside  # the ids were reused, and no reading was dropped for it
    warnings = [e for e in events if e["event"] == "key holds a different reading"]
    assert sum(w["count"] for w in warnings) == len(kept_beside)
    assert warnings[0]["level"] == "warning" and warnings[0]["source_row_ids"]
    finished = [e for e in events if e["event"] == "sync finished"]
    assert sum(e["conflicts"] for e in finished) == len(kept_beside)
    # A batch sent again finds its readings kept already: nothing is added twice.
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE sensor_readings SET synced = 0")
        conn.commit()
    again = sync_once(tmp_path, url, db)
    stored_again, kept_again = read_central()
    assert (sorted(stored_again), sorted(kept_again)) == (sorted(stored), sorted(kept_beside))
    assert not [e for e in again if e["event"] == "key holds a different reading"]


def test_restore_of_a_mixed_node_file_keeps_every_tables_ids_unique(tmp_path: Path) -> None:
    """Equipment tables have their own ids: after a restore with the node stopped, both the
    classic table and a motor's table continue above every id they ever handed out."""
    write_config(tmp_path / "config.yaml")
    write_identity(tmp_path / "classic.json", id="T1")
    write_identity(tmp_path / "motor.json", id="M1", type="motor", model="GA-55")
    db = tmp_path / "node.db"

    def backfill(start: str) -> subprocess.CompletedProcess[str]:
        args = ["--config", "config.yaml", "--identity", "classic.json", "motor.json"]
        args += ["--seed", "7", "--db", "node.db", "--start", start, "--backfill", "10m"]
        result = run_main(args, tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    backfill("2026-03-02T06:00:00Z")
    backup(db, tmp_path / "backup.db")
    backfill("2026-03-02T06:10:00Z")
    handed_out = {t: rows_of(db, t)[-1][0] for t in ("sensor_readings", "motor_readings")}
    restore(tmp_path / "backup.db", db)
    result = backfill("2026-03-02T06:20:00Z")
    detected = {e["table"]: e for e in log_events(result.stderr, "database restore detected")}
    assert {t: e["ids_handed_out"] for t, e in detected.items()} == handed_out
    for table, highest in handed_out.items():
        later = [r for r in rows_of(db, table) if r[1] >= "2026-03-02T06:20:00"]
        assert later and later[0][0] == highest + 1  # no id of the lost ten minutes again


def rows_of(db: Path, table: str) -> list[tuple[int, str]]:
    """(id, timestamp) of a table's rows in id order."""
    return [
        (int(r[0]), str(r[1])) for r in query(db, f"SELECT id, timestamp FROM {table} ORDER BY id")
    ]


def test_a_floor_that_cannot_be_saved_never_stops_the_rows(tmp_path: Path) -> None:
    """With the side file unwritable (a folder in its place), rows are still written, the
    problem is logged once, and a restore is still caught while the node runs."""
    db = tmp_path / "data.db"
    (tmp_path / "data.db-ids").mkdir()
    row = ("2026-03-02T06:00:00.000000Z", "T1", 20.0, 0.5, 24.0, 0, 0, None, "1.4", "m", "x", "l")
    store = Store(db, Database(path=str(db)))
    with capture_logs() as logs:
        store.open()
        for _ in range(3):
            assert store.write([row] * 10) == 10
        backup(db, tmp_path / "backup.db")
        assert store.write([row] * 10) == 10
        backup(tmp_path / "backup.db", db)  # a restore in place: same inode, older contents
        assert store.write([row] * 10) == 10
        store.finish()
    unsaved = [e for e in logs if e["event"] == "row id floor not saved"]
    assert len(unsaved) == 1 and unsaved[0]["log_level"] == "warning"
    assert [e["ids_handed_out"] for e in logs if e["event"] == "database restore detected"] == [40]
    assert query(db, "SELECT min(id), max(id), count(*) FROM sensor_readings") == [(1, 50, 40)]


def test_cursor_collector_ships_reused_ids_after_a_rollback(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A read-only collector whose cursor is past a restored file's newest id reads from that
    id on, so readings under reused ids (the floor lost too) are shipped, kept beside the
    stored ones, instead of skipped as if shipped already."""
    db = tmp_path / "data.db"
    url, read_central = central("sqlite", tmp_path, request)
    write_with_a_backup(tmp_path, db)
    events = sync_once(tmp_path, url, db, cursor="cursor.json")
    before_restore = stamps(db)
    restore(tmp_path / "backup.db", db)
    (tmp_path / "data.db-ids").unlink()
    events += sync_once(tmp_path, url, db, cursor="cursor.json")
    write_more(tmp_path, db)
    events += sync_once(tmp_path, url, db, cursor="cursor.json")
    stored, kept_beside = read_central()
    assert sorted(stored + kept_beside) == sorted(before_restore | stamps(db))
    (behind,) = [e for e in events if e["event"] == "source behind the cursor"]
    assert behind["file_last_id"] < behind["cursor_last_id"] == len(before_restore)
    assert rows(db, "count(*)", "synced = 1") == [(0,)]  # read-only: never marked
