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
from pathlib import Path
from typing import Any

from ..node import store
from ..node.config import Database
from ..node.readings import COLUMNS

_SELECTED = ", ".join(("id", *COLUMNS))
_TABLE = store.TABLE

READ_UNSYNCED = f"SELECT {_SELECTED} FROM {_TABLE} WHERE synced = 0 AND id > ? ORDER BY id LIMIT ?"
# ``--once`` stops at the newest id that existed when it started, so a busy node cannot
# keep it running forever.
READ_UNSYNCED_UNTIL = (
    f"SELECT {_SELECTED} FROM {_TABLE} WHERE synced = 0 AND id > ? AND id <= ? ORDER BY id LIMIT ?"
)
MARK_SYNCED = f"UPDATE {_TABLE} SET synced = 1 WHERE id IN ({{marks}})"
READ_AFTER = f"SELECT {_SELECTED} FROM {_TABLE} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
# The same reads, ids only: for a sink that copies the rows inside SQLite itself.
READ_UNSYNCED_IDS = READ_UNSYNCED.replace(_SELECTED, "id")
READ_UNSYNCED_UNTIL_IDS = READ_UNSYNCED_UNTIL.replace(_SELECTED, "id")
READ_AFTER_IDS = READ_AFTER.replace(_SELECTED, "id")
COUNT_UNSYNCED = f"SELECT count(*) FROM {_TABLE} WHERE synced = 0"
COUNT_AFTER = f"SELECT count(*) FROM {_TABLE} WHERE id > ?"
NEWEST_ID = f"SELECT coalesce(max(id), 0) FROM {_TABLE}"
DATABASE_ID = f"SELECT database_id FROM {store.META_TABLE}"

# Ids per UPDATE statement, well under SQLite's bound-parameter limit.
_MARK_CHUNK = 500
_NO_LIMIT = 2**63 - 1


class SourceError(Exception):
    """A node database could not be read or marked this time."""


class NotNodeDatabaseError(SourceError):
    """The file is SQLite (or empty) but not a sensorfleet node database (yet)."""


class NodeDatabase:
    """A node database file, reopened when the file at its path is replaced."""

    def __init__(self, path: Path, settings: Database, read_only: bool = False) -> None:
        self.path = path
        self.settings = settings
        self.read_only = read_only
        self.database_id: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._wal = path.with_name(path.name + "-wal")

    def __repr__(self) -> str:
        return f"NodeDatabase({str(self.path)!r})"

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
            conn.execute(f"SELECT synced FROM {_TABLE} LIMIT 0")
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
        return int(self._query(NEWEST_ID, ())[0][0])

    def read_unsynced(
        self, limit: int, after: int = 0, until: int | None = None, ids_only: bool = False
    ) -> list[tuple[Any, ...]]:
        """The oldest ``limit`` rows with ``synced = 0`` and ids above ``after``
        (and ``<= until`` if given); ``(id,)`` tuples with ``ids_only``."""
        if until is None:
            return self._query(READ_UNSYNCED_IDS if ids_only else READ_UNSYNCED, (after, limit))
        sql = READ_UNSYNCED_UNTIL_IDS if ids_only else READ_UNSYNCED_UNTIL
        return self._query(sql, (after, until, limit))

    def read_after(
        self, after: int, limit: int, until: int | None = None, ids_only: bool = False
    ) -> list[tuple[Any, ...]]:
        """The next ``limit`` rows with ids above ``after`` (read-only mode)."""
        bound = _NO_LIMIT if until is None else until
        return self._query(READ_AFTER_IDS if ids_only else READ_AFTER, (after, bound, limit))

    def backlog(self, after: int | None = None) -> int:
        """Rows still to ship: unsynced rows, or rows above the cursor in read-only mode."""
        if after is None:
            return int(self._query(COUNT_UNSYNCED, ())[0][0])
        return int(self._query(COUNT_AFTER, (after,))[0][0])

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
                        changed += conn.execute(MARK_SYNCED.format(marks=marks), chunk).rowcount
                    return changed
        except sqlite3.Error as exc:
            self.close()
            raise SourceError(f"mark synced: {exc}") from None
        raise AssertionError("unreachable: tenacity reraises")

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._inode = None
            conn.close()
