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

Every ``AUTOINCREMENT`` table of the file has its floor (the classic
``sensor_readings`` and each equipment model's ``<type>_readings``). The side
file holds one line per database id and table that lived at the path
(``<32 hex> <table> <20 digits>``). It is written only inside the database's write
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

Floors = dict[str, int]  # table -> highest id handed out


def side_path(database: Path) -> Path:
    """Where the floors of the database at ``database`` are kept."""
    return database.with_name(database.name + SUFFIX)


def sequences(conn: sqlite3.Connection) -> Floors:
    """The last id each ``AUTOINCREMENT`` table of this file handed out."""
    try:
        return {
            str(name): int(seq)
            for name, seq in conn.execute("SELECT name, seq FROM sqlite_sequence")
        }
    except sqlite3.OperationalError:  # no AUTOINCREMENT table in this file yet
        return {}


def raise_sequences(conn: sqlite3.Connection, floors: Floors) -> dict[str, tuple[int, int]]:
    """Make each table's next id at least its floor + 1 (inside a write transaction); return
    ``{table: (last id in the file, floor)}`` for the tables that were behind.

    A table the file does not hold (yet) is left alone: its floor applies once it exists.
    """
    current = sequences(conn)
    behind = {
        table: (current.get(table, 0), floor)
        for table, floor in floors.items()
        if current.get(table, 0) < floor
    }
    if behind:  # the usual answer is none: the catalogue is read only for a restore
        present = {
            str(name)
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        behind = {table: found for table, found in behind.items() if table in present}
    for table, (_, floor) in behind.items():
        if not conn.execute(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (floor, table)
        ).rowcount:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor))
    return behind


class IdFloor:
    """The side file of one database path.

    Read when the database is opened; afterwards this process's writes keep the
    copy in memory current, and each record is one write in place. Every writer
    of the file records the file's own newest ids, so the one that wrote last is
    always right, whichever process it is.
    """

    def __init__(self, database: Path) -> None:
        self.path = side_path(database)
        self._entries: dict[tuple[str, str], int] = {}
        self._size = 0  # bytes in the file as last read or written

    def read(self, database_id: str) -> Floors:
        """The floors recorded for ``database_id``, from the file (empty when none)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            data = b""
        else:
            self._size = len(data)
        for line in data.decode("ascii", errors="replace").splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[2].isdigit():  # a damaged line is never trusted
                key = (parts[0], parts[1])
                self._entries[key] = max(self._entries.get(key, 0), int(parts[2]))
        return {
            table: high for (found, table), high in self._entries.items() if found == database_id
        }

    def record(self, database_id: str, floors: Floors) -> None:
        """Raise the floors of ``database_id``; raises ``OSError`` if not saved."""
        changed = False
        for table, high in floors.items():
            key = (database_id, table)
            if self._entries.get(key, -1) < high:
                self._entries[key] = high
                changed = True
        if not changed:
            return
        data = "".join(
            f"{found} {table} {high:0{_DIGITS}d}\n"
            for (found, table), high in self._entries.items()
        ).encode("ascii")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            # Numbers have a fixed width and lines are never removed, so the file only
            # grows and one write in place replaces it; a damaged longer tail is cut off.
            os.pwrite(fd, data, 0)
            if len(data) < self._size:
                os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        self._size = len(data)
