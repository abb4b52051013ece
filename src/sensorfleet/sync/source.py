"""One node database as the collector sees it, and the exact SQL of the sync protocol.

The protocol, for this collector and for anyone writing their own:

1. ``READ_UNSYNCED`` takes the oldest unsynced rows by id above ``after``
   (0, or the last id of a batch still in flight). No OFFSET: rows leave the
   ``synced = 0`` set as they are marked, so paging by offset over that
   shrinking set skips rows. Ids come from ``AUTOINCREMENT`` and are never
   reused, and the partial index ``WHERE synced = 0`` keeps this query cheap
   however many synced rows the file holds.
2. The batch goes to the sink with no transaction open on the node file.
3. Only after the sink acknowledged, ``MARK_SYNCED`` marks exactly those ids
   in one short ``BEGIN IMMEDIATE`` transaction (busy timeout, retried on
   busy/locked), so the node's writer waits milliseconds at most.

A read-only collector (``--cursor``) never writes the file: it remembers the
highest id shipped per database id and reads ``READ_AFTER``. That is safe
because SQLite commits one writer at a time and ``AUTOINCREMENT`` ids only
grow, so no row can later appear below an id already seen.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..node import store
from ..node.config import Database
from ..node.layout import CLASSIC, TABLES_TABLE, TableLayout


@dataclass(frozen=True)
class Statements:
    """The protocol's SQL for one readings table of a node file."""

    read_unsynced: str
    read_unsynced_until: str
    mark_synced: str
    read_after: str
    read_unsynced_ids: str
    read_unsynced_until_ids: str
    read_after_ids: str
    count_unsynced: str
    count_after: str
    newest_id: str

    @classmethod
    def of(cls, layout: TableLayout) -> Statements:
        selected, table = ", ".join(("id", *layout.names)), layout.table
        unsynced = f"SELECT {selected} FROM {table} WHERE synced = 0 AND id > ? ORDER BY id LIMIT ?"
        # ``--once`` stops at the newest id that existed when it started, so a busy node
        # cannot keep it running forever.
        until = (
            f"SELECT {selected} FROM {table} WHERE synced = 0 AND id > ? AND id <= ? "
            "ORDER BY id LIMIT ?"
        )
        after = f"SELECT {selected} FROM {table} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
        return cls(
            read_unsynced=unsynced,
            read_unsynced_until=until,
            mark_synced=f"UPDATE {table} SET synced = 1 WHERE id IN ({{marks}})",
            read_after=after,
            # The same reads, ids only: for a sink that copies the rows inside SQLite itself.
            read_unsynced_ids=unsynced.replace(selected, "id", 1),
            read_unsynced_until_ids=until.replace(selected, "id", 1),
            read_after_ids=after.replace(selected, "id", 1),
            count_unsynced=f"SELECT count(*) FROM {table} WHERE synced = 0",
            count_after=f"SELECT count(*) FROM {table} WHERE id > ?",
            newest_id=f"SELECT coalesce(max(id), 0) FROM {table}",
        )


CLASSIC_STATEMENTS = Statements.of(CLASSIC)
# The classic table's statements by name: the protocol as docs/sync.md shows it.
READ_UNSYNCED = CLASSIC_STATEMENTS.read_unsynced
READ_UNSYNCED_UNTIL = CLASSIC_STATEMENTS.read_unsynced_until
MARK_SYNCED = CLASSIC_STATEMENTS.mark_synced
READ_AFTER = CLASSIC_STATEMENTS.read_after
DATABASE_ID = f"SELECT database_id FROM {store.META_TABLE}"
# The equipment tables the node file holds (absent from files without any).
EQUIPMENT_TABLES = f"SELECT name, type, layout FROM {TABLES_TABLE} ORDER BY name"

# Ids per UPDATE statement, well under SQLite's bound-parameter limit.
_MARK_CHUNK = 500
_NO_LIMIT = 2**63 - 1


class SourceError(Exception):
    """A node database could not be read or marked this time."""


class NotNodeDatabaseError(SourceError):
    """The file is SQLite (or empty) but not a sensorfleet node database (yet)."""


class NodeDatabase:
    """One readings table of a node database file (``sensor_readings`` unless another
    layout is given), reopened when the file at its path is replaced."""

    def __init__(
        self,
        path: Path,
        settings: Database,
        read_only: bool = False,
        layout: TableLayout = CLASSIC,
    ) -> None:
        self.path = path
        self.settings = settings
        self.read_only = read_only
        self.layout = layout
        self._sql = Statements.of(layout)
        self.database_id: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._wal = path.with_name(path.name + "-wal")

    def __repr__(self) -> str:
        return f"NodeDatabase({str(self.path)!r}, {self.layout.table!r})"

    def signature(self) -> tuple[int, ...]:
        """A cheap fingerprint of the file's latest commit; a new value means rows may wait.

        ``PRAGMA data_version`` on the open connection changes with every commit
        by another connection (it reads the WAL index in shared memory, no table),
        and never with this connection's own marks. The ``stat`` of the file and
        its ``-wal`` covers a file not open yet, or replaced under its name.
        """
        found: list[int] = []
        for path in (self.path, self._wal):
            try:
                st = os.stat(path)
            except OSError:
                found.extend((0, 0, 0))
            else:
                found.extend((st.st_ino, st.st_size, st.st_mtime_ns))
        version = -1
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        found.append(version)
        return tuple(found)

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino)

    def open(self) -> str:
        """Make sure the connection points at the file now at ``path``; return its database id.

        A new file (moved aside and recreated) gets a new connection and brings
        its own database id, so its ids never collide with the old file's.
        """
        identity = self._file_identity()
        if identity is None:
            self.close()
            raise SourceError("file not found")
        if self._conn is not None and identity == self._inode:
            assert self.database_id is not None
            return self.database_id
        self.close()
        try:
            conn = store.open_connection(
                self.path, self.settings, "read" if self.read_only else "write"
            )
        except sqlite3.Error as exc:
            raise SourceError(f"open: {exc}") from None
        try:
            row = conn.execute(DATABASE_ID).fetchone()
            conn.execute(f"SELECT synced FROM {self.layout.table} LIMIT 0")
        except sqlite3.Error as exc:
            conn.close()
            if "no such" in str(exc):
                raise NotNodeDatabaseError(f"not a sensorfleet node database ({exc})") from None
            raise SourceError(f"read database id: {exc}") from None
        if row is None:
            conn.close()
            raise NotNodeDatabaseError("not a sensorfleet node database (no database id yet)")
        self._conn, self._inode, self.database_id = conn, identity, str(row[0])
        return self.database_id

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._conn is None:
            raise SourceError("not open")
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self.close()
            raise SourceError(f"read: {exc}") from None

    def newest_id(self) -> int:
        """The highest row id in the file now."""
        return int(self._query(self._sql.newest_id, ())[0][0])

    def read_unsynced(
        self, limit: int, after: int = 0, until: int | None = None, ids_only: bool = False
    ) -> list[tuple[Any, ...]]:
        """The oldest ``limit`` rows with ``synced = 0`` and ids above ``after``
        (and ``<= until`` if given); ``(id,)`` tuples with ``ids_only``."""
        sql = self._sql
        if until is None:
            read = sql.read_unsynced_ids if ids_only else sql.read_unsynced
            return self._query(read, (after, limit))
        read = sql.read_unsynced_until_ids if ids_only else sql.read_unsynced_until
        return self._query(read, (after, until, limit))

    def read_after(
        self, after: int, limit: int, until: int | None = None, ids_only: bool = False
    ) -> list[tuple[Any, ...]]:
        """The next ``limit`` rows with ids above ``after`` (read-only mode)."""
        bound = _NO_LIMIT if until is None else until
        read = self._sql.read_after_ids if ids_only else self._sql.read_after
        return self._query(read, (after, bound, limit))

    def backlog(self, after: int | None = None) -> int:
        """Rows still to ship: unsynced rows, or rows above the cursor in read-only mode."""
        if after is None:
            return int(self._query(self._sql.count_unsynced, ())[0][0])
        return int(self._query(self._sql.count_after, (after,))[0][0])

    def mark(self, ids: Sequence[int], database_id: str | None = None) -> int:
        """Set ``synced = 1`` on exactly these ids in one short retried transaction.

        Given the ``database_id`` the ids were read from, a connection closed by a
        failed read is reopened first (unless the file was replaced meanwhile)."""
        if self.read_only:
            raise SourceError("read-only source cannot be marked")
        if self._conn is None and database_id is not None and self.open() != database_id:
            raise SourceError("file replaced before its shipped rows were marked")
        if self._conn is None:
            raise SourceError("not open")
        conn = self._conn
        assert conn is not None
        try:
            for attempt in store.retrying(self.settings.retry_attempts):
                with attempt, store.transaction(conn):
                    changed = 0
                    for start in range(0, len(ids), _MARK_CHUNK):
                        chunk = ids[start : start + _MARK_CHUNK]
                        marks = ", ".join("?" * len(chunk))
                        mark = self._sql.mark_synced.format(marks=marks)
                        changed += conn.execute(mark, chunk).rowcount
                    return changed
        except sqlite3.Error as exc:
            self.close()
            raise SourceError(f"mark synced: {exc}") from None
        raise AssertionError("unreachable: tenacity reraises")

    def equipment_layouts(self) -> list[TableLayout]:
        """The equipment tables the open file holds, as their node wrote them (none for a
        file of classic sensors only); a layout that cannot be read is skipped."""
        if self._conn is None:
            return []
        try:
            found = self._conn.execute(EQUIPMENT_TABLES).fetchall()
        except sqlite3.Error:
            return []  # no registry: a file of classic sensors only
        layouts = []
        for name, type_name, text in found:
            with contextlib.suppress(ValueError):
                layouts.append(TableLayout.from_json(str(name), str(type_name), str(text)))
        return layouts

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._inode = None
            conn.close()
