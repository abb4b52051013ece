"""``sqlite:///path``: a central SQLite file (the embedded default).

Each batch is one ``BEGIN IMMEDIATE`` transaction of ``INSERT … ON CONFLICT
DO NOTHING`` on the primary key ``(database_id, source_row_id)``; the commit
(WAL, ``synchronous = FULL``) is the acknowledgement.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ... import store
from ...config import Database
from .base import CENTRAL_COLUMNS, Batch, SinkError

DEFAULT_TABLE = "sensor_readings"

# The central copy of the node's reading columns, keyed by where each row came from.
# WITHOUT ROWID: rows live in key order, so the upsert key is the table itself,
# not a second b-tree beside it (smaller file, faster inserts).
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {{table}} (
    database_id TEXT NOT NULL,
    source_row_id INTEGER NOT NULL,
{store.READING_COLUMNS_SQL},
    received_at TEXT NOT NULL,
    PRIMARY KEY (database_id, source_row_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_{{table}}_sensor_time ON {{table}}(sensor_id, timestamp)
"""


class SQLiteSink:
    """Rows upserted into one table of a local SQLite file."""

    def __init__(self, path: Path, table: str = DEFAULT_TABLE, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.table = table
        # FULL: a committed batch survives power loss, not only a crash of this process.
        self.settings = Database(
            path=str(path), synchronous="full", busy_timeout_ms=busy_timeout_ms
        )
        self._conn: sqlite3.Connection | None = None
        columns = ", ".join(CENTRAL_COLUMNS)
        marks = ", ".join("?" * len(CENTRAL_COLUMNS))
        self._insert = (
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            "ON CONFLICT (database_id, source_row_id) DO NOTHING"
        )

    @property
    def name(self) -> str:
        return f"sqlite:///{self.path}"

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = store.connect(self.path, self.settings)
            with store.transaction(conn):
                for statement in _SCHEMA.format(table=self.table).split(";"):
                    conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise SinkError(f"{self.name}: open central database: {exc}") from None
        self._conn = conn

    def write(self, batch: Batch) -> int:
        if self._conn is None:
            self.open()
        conn = self._conn
        assert conn is not None
        try:
            for attempt in store.retrying(self.settings.retry_attempts):
                with attempt, store.transaction(conn):
                    before = conn.total_changes
                    conn.executemany(self._insert, batch.central_rows())
                    return conn.total_changes - before
        except (sqlite3.Error, OSError) as exc:
            self.close()  # reopen next time, in case the file was replaced
            raise SinkError(f"{self.name}: write batch: {exc}") from None
        raise AssertionError("unreachable: tenacity reraises")

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
