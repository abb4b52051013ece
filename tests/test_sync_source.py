"""The sync protocol on a real node database: read oldest unsynced rows, mark exactly those."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from servers import make_node_db, sqlite_rows

from sensorfleet.node.config import Database
from sensorfleet.sync import source as protocol
from sensorfleet.sync.source import NodeDatabase, NotNodeDatabaseError, SourceError


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_node_db(tmp_path_factory.mktemp("tpl") / "node.db", seed=5, backfill="20m")


@pytest.fixture
def node_db(template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "node.db"
    shutil.copy(template, target)
    return target


def test_reads_oldest_unsynced_rows_in_id_order(node_db: Path) -> None:
    """A batch is the lowest unsynced ids, in order, at most batch-size of them."""
    with sqlite3.connect(node_db) as conn:
        conn.execute("UPDATE sensor_readings SET synced = 1 WHERE id % 3 = 0")
    source = NodeDatabase(node_db, Database())
    source.open()
    rows = source.read_unsynced(10)
    assert [r[0] for r in rows] == [1, 2, 4, 5, 7, 8, 10, 11, 13, 14]
    assert rows[0][1].endswith("Z") and len(rows[0]) == 13


def test_marks_exactly_the_shipped_ids(node_db: Path) -> None:
    """Marking sets synced = 1 on the given ids and on no other row."""
    source = NodeDatabase(node_db, Database())
    source.open()
    ids = [r[0] for r in source.read_unsynced(700)]
    assert source.mark(ids) == 700
    synced = sqlite_rows(node_db, "SELECT id FROM sensor_readings WHERE synced = 1 ORDER BY id")
    assert [r[0] for r in synced] == ids
    unsynced = sqlite_rows(node_db, "SELECT count(*) FROM sensor_readings WHERE synced = 0")
    assert source.backlog() == unsynced[0][0] > 0


def test_passes_take_every_row_once_while_the_set_shrinks(node_db: Path) -> None:
    """Repeated read-then-mark passes visit every row exactly once (no OFFSET paging)."""
    source = NodeDatabase(node_db, Database())
    source.open()
    seen: list[int] = []
    while rows := source.read_unsynced(97):
        seen.extend(r[0] for r in rows)
        source.mark([r[0] for r in rows])
    total = sqlite_rows(node_db, "SELECT count(*) FROM sensor_readings")[0][0]
    assert seen == list(range(1, total + 1))


@pytest.mark.parametrize("sql", [protocol.READ_UNSYNCED, protocol.READ_UNSYNCED_UNTIL])
def test_unsynced_reads_use_the_partial_index(node_db: Path, sql: str) -> None:
    """The read query is answered from the partial index on unsynced ids, not a table scan."""
    params = (0, 10) if sql.count("?") == 2 else (0, 10**9, 10)
    plan = sqlite_rows(node_db, "EXPLAIN QUERY PLAN " + sql, params)
    assert any("idx_sensor_readings_unsynced" in row[-1] for row in plan), plan


def test_mark_waits_for_the_node_writer(node_db: Path) -> None:
    """A mark issued while the node holds the write lock waits (busy timeout) and then succeeds."""
    holder = sqlite3.connect(node_db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.4, lambda: holder.execute("COMMIT"))
    source = NodeDatabase(node_db, Database(busy_timeout_ms=5000))
    source.open()
    started = time.monotonic()
    release.start()
    assert source.mark([1, 2, 3]) == 3
    assert time.monotonic() - started >= 0.3
    release.join()
    holder.close()


def test_read_only_source_never_writes(node_db: Path) -> None:
    """A read-only source reads rows after a cursor and refuses to mark anything."""
    source = NodeDatabase(node_db, Database(), read_only=True)
    source.open()
    assert [r[0] for r in source.read_after(5, 3)] == [6, 7, 8]
    assert [r[0] for r in source.read_after(5, 10, until=7)] == [6, 7]
    with pytest.raises(SourceError):
        source.mark([1])
    assert sqlite_rows(node_db, "SELECT count(*) FROM sensor_readings WHERE synced = 1") == [(0,)]


def test_a_recreated_file_brings_a_new_database_id(node_db: Path, tmp_path: Path) -> None:
    """When the file at the path is replaced, the source reopens it and reports its new id."""
    source = NodeDatabase(node_db, Database())
    first = source.open()
    node_db.rename(tmp_path / "moved-aside.db")
    make_node_db(node_db, seed=6, backfill="1m")
    second = source.open()
    assert first != second
    assert source.newest_id() == 60


def test_missing_and_foreign_files_are_refused(tmp_path: Path) -> None:
    """A missing file is not created, and a SQLite file without the node tables is not a source."""
    missing = tmp_path / "absent.db"
    with pytest.raises(SourceError, match="file not found"):
        NodeDatabase(missing, Database()).open()
    assert not missing.exists()
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(NotNodeDatabaseError):
        NodeDatabase(foreign, Database()).open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SourceError):
        NodeDatabase(garbage, Database()).open()
