"""Node-side retention on real node files: only synced rows go, by age and by size."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest
from servers import make_node_db, node_env, sqlite_rows
from test_sync_equipment import make_mixed_db

from sensorfleet.node import store
from sensorfleet.node.clock import format_instant
from sensorfleet.node.config import Database, Retention
from sensorfleet.node.retention import RetentionResult, RetentionWorker, apply_retention, used_bytes


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Six hours at one reading a second, ending now.
    return make_node_db(tmp_path_factory.mktemp("tpl") / "node.db", seed=8, backfill="6h")


@pytest.fixture
def node_db(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(template, tmp_path / "node.db"))


def mark_synced(db: Path, where: str) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f"UPDATE sensor_readings SET synced = 1 WHERE {where}")


def counts(db: Path) -> dict[int, int]:
    rows = sqlite_rows(db, "SELECT synced, count(*) FROM sensor_readings GROUP BY synced")
    return dict(rows)


def run(db: Path, rules: Retention, now: float | None = None) -> RetentionResult:
    with closing(store.open_connection(db, Database(), "write")) as conn:
        return apply_retention(conn, rules, time.time() if now is None else now, pause=0)


def test_age_rule_deletes_only_old_synced_rows(node_db: Path) -> None:
    """Synced rows older than the age go; unsynced rows of any age and newer rows stay."""
    mark_synced(node_db, "id % 2 = 0")
    now = time.time()
    cutoff = format_instant(now - 3600)
    recent_sql = "SELECT count(*) FROM sensor_readings WHERE timestamp >= ?"
    recent = sqlite_rows(node_db, recent_sql, (cutoff,))
    before = counts(node_db)
    result = run(node_db, Retention(synced_max_age_seconds=3600), now)
    old_synced = "SELECT count(*) FROM sensor_readings WHERE synced = 1 AND timestamp < ?"
    assert sqlite_rows(node_db, old_synced, (cutoff,)) == [(0,)]
    after = counts(node_db)
    assert after[0] == before[0]  # not one unsynced row touched
    assert 0 < before[1] - after[1] == result.deleted_by_age
    assert sqlite_rows(node_db, recent_sql, (cutoff,)) == recent


def test_size_rule_deletes_oldest_synced_rows_until_under_the_limit(node_db: Path) -> None:
    """Over the size, the oldest synced rows go until the data fits; unsynced rows all stay."""
    mark_synced(node_db, "id <= 15000")
    with closing(sqlite3.connect(node_db)) as conn:
        used = used_bytes(conn)
    limit_mb = used / 2 / 1048576
    result = run(node_db, Retention(max_size_mb=limit_mb))
    assert result.within_size and result.deleted_by_size > 0
    with closing(sqlite3.connect(node_db)) as conn:
        assert used_bytes(conn) <= limit_mb * 1048576
    assert counts(node_db)[0] == 21600 - 15000
    oldest_synced = sqlite_rows(node_db, "SELECT min(id) FROM sensor_readings WHERE synced = 1")
    assert oldest_synced[0][0] == result.deleted_by_size + 1


def test_size_rule_never_deletes_unsynced_rows_to_fit(node_db: Path) -> None:
    """When unsynced rows alone exceed the size, nothing is deleted and the check says so."""
    result = run(node_db, Retention(max_size_mb=0.1))
    assert result.deleted == 0 and not result.within_size
    assert counts(node_db) == {0: 21600}


def test_incremental_auto_vacuum_files_shrink_on_disk(node_db: Path) -> None:
    """A file created with auto_vacuum = INCREMENTAL gives freed pages back to the disk."""
    with closing(sqlite3.connect(node_db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = delete")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode = wal")
    mark_synced(node_db, "1")
    size = node_db.stat().st_size
    run(node_db, Retention(max_size_mb=size / 4 / 1048576))
    with closing(sqlite3.connect(node_db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert node_db.stat().st_size <= size / 4


def test_worker_applies_rules_in_the_background_and_stops_promptly(node_db: Path) -> None:
    """The worker thread checks each file on its interval and stops when asked."""
    mark_synced(node_db, "1")
    settings = Database(
        retention=Retention(synced_max_age_seconds=1800, check_interval_seconds=0.05)
    )
    assert RetentionWorker.wanted(settings) and not RetentionWorker.wanted(Database())
    worker = RetentionWorker([node_db, node_db.with_name("not-yet.db")], settings)
    worker.start()
    deadline = time.monotonic() + 20
    while worker.deleted == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 2
    assert worker.deleted > 0 and worker.checks >= 1
    assert sqlite_rows(node_db, "SELECT count(*) FROM sensor_readings")[0][0] <= 1801


def test_node_runs_retention_when_configured(node_db: Path, tmp_path: Path) -> None:
    """`sensorfleet run` with database.retention deletes old synced rows while it writes."""
    mark_synced(node_db, "1")
    config = tmp_path / "config.yaml"
    config.write_text(
        "database:\n"
        "  retention:\n"
        "    synced_max_age_seconds: 1800\n"
        "    check_interval_seconds: 0.2\n"
    )
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "run", "--config", str(config), "--db",
         str(node_db), "--run-time", "3", "--readings-per-second", "20", "--seed", "3"],
        cwd=tmp_path, env=node_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"retention applied"' in result.stderr
    # Every check ran after ``started``, so nothing older than this cutoff may be left.
    cutoff = format_instant(started - 1800)
    old = "SELECT count(*) FROM sensor_readings WHERE timestamp < ?"
    assert sqlite_rows(node_db, old, (cutoff,)) == [(0,)]
    assert counts(node_db)[0] >= 40  # the rows written live are unsynced and kept


def test_retention_covers_equipment_tables(tmp_path: Path) -> None:
    """Age and size rules delete synced rows of every equipment table too, never unsynced."""
    db = make_mixed_db(tmp_path / "node")
    with closing(sqlite3.connect(db)) as conn, conn:
        for table in ("sensor_readings", "compressor_readings"):
            conn.execute(f"UPDATE {table} SET synced = 1 WHERE id <= 300")
    newest = sqlite_rows(db, "SELECT max(timestamp) FROM compressor_readings")[0][0]
    now = datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()
    result = run(db, Retention(synced_max_age_seconds=60), now)
    assert result.deleted_by_age == 600  # 300 synced rows of each table, all old enough
    for table in ("sensor_readings", "compressor_readings"):
        left = sqlite_rows(db, f"SELECT synced, count(*) FROM {table} GROUP BY synced")
        assert left == [(0, 300)], table
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE compressor_readings SET synced = 1")
    result = run(db, Retention(max_size_mb=0.01), now)
    assert sqlite_rows(db, "SELECT count(*) FROM compressor_readings") == [(0,)]
    assert sqlite_rows(db, "SELECT count(*) FROM sensor_readings") == [(300,)]  # unsynced
    assert result.deleted_by_size == 300 and not result.within_size
