"""The highest row id each database handed out, kept beside the file where a restore cannot
roll it back.

Central stores know a reading by ``(database_id, id)``. SQLite's ``AUTOINCREMENT``
never hands out an id twice within one file's history, but a backup copied back
over the file (a restore) brings its older ``sqlite_sequence`` with it, and the
next rows would get ids that readings already shipped carry. So every write
transaction also records the newest id in ``NAME-ids`` next to the database,
and before writing, the node raises the file's sequence to that floor when the
file is behind it: rows written after a restore get ids no reading ever had,
whether the node ran through the restore or was stopped.

The side file holds one fixed-width line per database id that lived at the path
(``<32 hex> <20 digits>``). It is written only inside the database's write
transaction, so writers of one file never interleave, and with plain writes (no
fsync): it survives any kill of the process, like the database's own WAL
commits with ``synchronous = NORMAL``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

SUFFIX = "-ids"
_DIGITS = 20


def side_path(database: Path) -> Path:
    """Where the floor of the database at ``database`` is kept."""
    return database.with_name(database.name + SUFFIX)


def sequence(conn: sqlite3.Connection, table: str) -> int:
    """The last id ``table``'s ``AUTOINCREMENT`` handed out in this file (0 before any); for
    a table made without it (an older simulator's), its highest id."""
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    except sqlite3.OperationalError:  # no AUTOINCREMENT table in this file
        row = None
    if row is None:
        row = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()
    return int(row[0])


def raise_sequence(conn: sqlite3.Connection, table: str, floor: int) -> bool:
    """Make the next id of ``table`` ``floor + 1`` (inside a write transaction); False for a
    table made without ``AUTOINCREMENT``, whose next id is always its highest plus one."""
    if not has_autoincrement(conn, table):
        return False
    if not conn.execute(
        "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (floor, table)
    ).rowcount:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor))
    return True


def has_autoincrement(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None and "AUTOINCREMENT" in str(row[0]).upper()


class IdFloor:
    """The side file of one database path.

    Read when the database is opened; afterwards this process's writes keep the
    copy in memory current, and each record is one write in place. Every writer
    of the file records the file's own newest id, so the one that wrote last is
    always right, whichever process it is.
    """

    def __init__(self, database: Path) -> None:
        self.path = side_path(database)
        self._entries: dict[str, int] = {}
        self._size = 0  # bytes in the file as last read or written

    def read(self, database_id: str) -> int:
        """The highest id recorded for ``database_id``, from the file (0 when none)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return self._entries.get(database_id, 0)
        self._size = len(data)
        for line in data.decode("ascii", errors="replace").splitlines():
            key, _, high = line.partition(" ")
            if high.isdigit():  # a damaged line is ignored, never trusted
                self._entries[key] = max(self._entries.get(key, 0), int(high))
        return self._entries.get(database_id, 0)

    def record(self, database_id: str, high: int) -> None:
        """Raise the floor of ``database_id`` to ``high``; raises ``OSError`` if not saved."""
        if self._entries.get(database_id, -1) >= high:
            return
        self._entries[database_id] = high
        body = "".join(f"{key} {value:0{_DIGITS}d}\n" for key, value in self._entries.items())
        data = body.encode("ascii")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            # Lines have a fixed width and are never removed, so the file only grows and
            # one write in place replaces it; a damaged longer tail is cut off.
            os.pwrite(fd, data, 0)
            if len(data) < self._size:
                os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        self._size = len(data)
