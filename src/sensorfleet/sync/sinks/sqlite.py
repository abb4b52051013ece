"""``sqlite:///path``: a central SQLite file (the embedded default).

Each batch is one ``BEGIN IMMEDIATE`` transaction of ``INSERT … ON CONFLICT
DO NOTHING`` on the primary key ``(database_id, source_row_id)``; the commit
(WAL, ``synchronous = FULL``) is the acknowledgement.

The rows never pass through Python: the sink attaches the batch's node file
read-only and copies the batch's ids with one ``INSERT … SELECT`` (the
collector reads only ids for it, ``copies_rows``). The node file's
``database_id`` is checked in the same transaction, so a file replaced since
the read is refused, not copied. The read holds the node file's snapshot only
for that statement; in WAL mode it never blocks the node's writer.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ...node import store
from ...node.config import Database
from ...node.layout import CLASSIC, TableLayout
from .base import CONFLICTS_SUFFIX, Batch, SinkError, central_columns, log_conflicts

DEFAULT_TABLE = "sensor_readings"


# The central copy of a node table's reading columns, keyed by where each row came from.
# WITHOUT ROWID: rows live in key order, so the upsert key is the table itself,
# not a second b-tree beside it (smaller file, faster inserts).
def _schema(table: str, layout: TableLayout) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    database_id TEXT NOT NULL,
    source_row_id INTEGER NOT NULL,
{layout.sqlite_columns_sql()},
    received_at TEXT NOT NULL,
    PRIMARY KEY (database_id, source_row_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_{table}_sensor_time ON {table}(sensor_id, timestamp);
-- A second, different reading under a key the table holds: kept here, never dropped.
CREATE TABLE IF NOT EXISTS {table}{CONFLICTS_SUFFIX} (
    database_id TEXT NOT NULL,
    source_row_id INTEGER NOT NULL,
{layout.sqlite_columns_sql()},
    received_at TEXT NOT NULL,
    detected_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_{table}{CONFLICTS_SUFFIX}_key
    ON {table}{CONFLICTS_SUFFIX}(database_id, source_row_id)
"""


@dataclass(frozen=True)
class _Statements:
    """Insert and copy of one central table, and the keeping of readings whose key it
    holds with another reading (``keep``, with ``{source}`` for where the batch's rows are)."""

    insert: str
    copy: str
    from_node: str
    keep: str


_NODE = "sensorfleet_node"  # schema name of the attached node file


def _uri_filenames() -> bool:
    """Whether this SQLite library reads ``file:…?mode=ro`` in ATTACH (built with USE_URI)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        return any("USE_URI" in o for (o,) in conn.execute("PRAGMA compile_options"))


class SQLiteSink:
    """Rows upserted into one table of a local SQLite file.

    ``write`` takes full rows (inserted from Python) or, with ``copies_rows``,
    ids alone (copied from the attached node file).
    """

    copies_rows = _uri_filenames()

    def __init__(self, path: Path, table: str = DEFAULT_TABLE, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.table = table
        # FULL: a committed batch survives power loss, not only a crash of this process.
        self.settings = Database(
            path=str(path), synchronous="full", busy_timeout_ms=busy_timeout_ms
        )
        self._conn: sqlite3.Connection | None = None
        self._attached: str | None = None
        self._statements: dict[TableLayout, _Statements] = {}
        self.conflicts = 0  # readings kept beside a table because their key was taken

    def _table(self, layout: TableLayout) -> str:
        """The central table of ``layout``: ``table`` for classic readings (the URL may
        name it), the node's own ``<type>_readings`` for an equipment model."""
        return self.table if layout.table == CLASSIC.table else layout.table

    def _prepare(self, conn: sqlite3.Connection, layout: TableLayout) -> _Statements:
        """Create the central table of ``layout`` if needed (in the batch's transaction, so
        a rolled-back batch leaves no half-made table); its statements.

        An equipment table's labels are nullable there (``TableLayout.relaxed``), and a
        column the table lacks (a channel the node's table gained since, labels a first
        node hid) is added, so nodes with and without hidden labels share one table."""
        table = self._table(layout)
        central = layout.relaxed()
        for statement in _schema(table, central).split(";"):
            conn.execute(statement)
        # A channel a node's table gained since, or labels that another node hid: added.
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column in central.columns:
            if column.name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column.sqlite_sql()}")
        found = self._statements.get(layout)
        if found is not None:
            return found
        columns = central_columns(layout)
        names, marks = ", ".join(columns), ", ".join("?" * len(columns))
        # The batch's rows in the attached node file, as central rows.
        from_node = (
            "SELECT ? AS database_id, r.id AS source_row_id, "
            + ", ".join(f"r.{c}" for c in layout.names)
            + f", ? AS received_at FROM {_NODE}.{layout.table} AS r "
            "WHERE r.id IN (SELECT value FROM json_each(?))"
        )
        # Rows of the batch whose key the table holds with another reading and that are
        # not kept beside it yet: a key never names two readings with one dropped.
        same = " AND ".join(f"c.{c} IS s.{c}" for c in layout.names)
        kept = " AND ".join(f"k.{c} IS s.{c}" for c in layout.names)
        conflicts = table + CONFLICTS_SUFFIX
        keep = (
            f"INSERT INTO {conflicts} ({names}, detected_at) SELECT "
            + ", ".join(f"s.{c}" for c in columns)
            + f", ? FROM ({{source}}) AS s JOIN {table} AS c "
            "ON c.database_id = s.database_id AND c.source_row_id = s.source_row_id "
            f"WHERE NOT ({same}) AND NOT EXISTS (SELECT 1 FROM {conflicts} AS k "
            "WHERE k.database_id = s.database_id AND k.source_row_id = s.source_row_id "
            f"AND {kept}) RETURNING source_row_id"
        )
        statements = _Statements(
            insert=(
                f"INSERT INTO {table} ({names}) VALUES ({marks}) "
                "ON CONFLICT (database_id, source_row_id) DO NOTHING"
            ),
            copy=(
                f"INSERT INTO {table} ({names}) {from_node} "
                "ON CONFLICT (database_id, source_row_id) DO NOTHING"
            ),
            from_node=from_node,
            keep=keep,
        )
        self._statements[layout] = statements
        return statements

    @property
    def name(self) -> str:
        return f"sqlite:///{self.path}"

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = store.open_connection(self.path, self.settings)
            with store.transaction(conn):
                self._prepare(conn, CLASSIC)
        except (sqlite3.Error, OSError) as exc:
            raise SinkError(f"{self.name}: open central database: {exc}") from None
        self._conn = conn

    def write(self, batch: Batch) -> int:
        if self._conn is None:
            self.open()
        conn = self._conn
        assert conn is not None
        copy = len(batch.rows[0]) == 1
        ids = json.dumps(batch.ids) if copy else ""
        try:
            for attempt in store.retrying(self.settings.retry_attempts):
                with attempt:
                    if copy:
                        self._attach(conn, batch.source)
                    with store.transaction(conn):
                        statements = self._prepare(conn, batch.layout)
                        before = conn.total_changes
                        if copy:
                            self._check_source(conn, batch)
                            conn.execute(
                                statements.copy, (batch.database_id, batch.received_at, ids)
                            )
                        else:
                            conn.executemany(statements.insert, batch.central_rows())
                        stored = conn.total_changes - before
                        if stored < len(batch):  # some keys were there: the same readings?
                            self._keep_different(conn, statements, batch, ids)
                        return stored
        except (sqlite3.Error, OSError) as exc:
            self.close()  # reopen next time, in case the file was replaced
            raise SinkError(f"{self.name}: write batch: {exc}") from None
        raise AssertionError("unreachable: tenacity reraises")

    def _keep_different(
        self, conn: sqlite3.Connection, statements: _Statements, batch: Batch, ids: str
    ) -> None:
        """Keep, beside the table, the batch's readings whose key holds another reading."""
        now = batch.received_at
        if ids:
            sql = statements.keep.format(source=statements.from_node)
            params = [(now, batch.database_id, now, ids)]
        else:  # rows from Python (no URI support): one row at a time
            one_row = "SELECT " + ", ".join(f"? AS {c}" for c in batch.columns)
            sql = statements.keep.format(source=one_row)
            params = [(now, *row) for row in batch.central_rows()]
        found = sorted(int(r[0]) for p in params for r in conn.execute(sql, p))
        if found:
            self.conflicts += len(found)
            log_conflicts(self.name, self._table(batch.layout), batch.database_id, found)

    def _check_source(self, conn: sqlite3.Connection, batch: Batch) -> None:
        found = conn.execute(f"SELECT database_id FROM {_NODE}.sensorfleet_meta").fetchone()
        if found != (batch.database_id,):
            raise SinkError(
                f"{self.name}: {batch.source} is no longer the database "
                f"{batch.database_id} its rows were read from"
            )

    def _attach(self, conn: sqlite3.Connection, source: str) -> None:
        """Attach the node file ``source`` read-only (kept until another file's batch)."""
        if self._attached == source:
            return
        if self._attached is not None:
            conn.execute(f"DETACH DATABASE {_NODE}")
            self._attached = None
        conn.execute(f"ATTACH DATABASE ? AS {_NODE}", (f"file:{quote(source)}?mode=ro",))
        self._attached = source

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._attached = None
            conn.close()
