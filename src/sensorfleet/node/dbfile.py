"""What lies at a database path: the node's own file, a corrupt one, or a foreign one.

The node never writes into a file that is not its own. A corrupt file (at
start, or detected on a failing write) and a foreign one (renamed over the
node's file while it runs: a restored backup of another database, or any
other SQLite file) are moved aside intact with their companions, never
deleted, and a fresh file starts. A ``-wal`` left by the node's previous
file is moved aside too, so SQLite never replays it into the new one.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from .._problems import not_regular_file

# Files that belong to a database and must move with it: a hot journal or WAL
# left beside a fresh file would be replayed into it.
COMPANIONS = ("", "-wal", "-shm", "-journal")

# SQLite primary result codes that mean the file's contents are damaged.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_corrupt(exc: BaseException) -> bool:
    """True for SQLITE_CORRUPT and SQLITE_NOTADB: the file is damaged, waiting will not help."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message


def is_healthy(path: Path) -> bool:
    """False when the file exists but is not a usable SQLite database.

    Only regular files are judged: anything else at the path (a folder, say)
    is an outage to wait out, not a corrupt database to move aside.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return True
    try:
        with closing(_read_only(path)) as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        # Someone else holding the file, or no access right now, says nothing about its
        # contents; "not a database" and "malformed" do.
        message = str(exc).lower()
        return any(word in message for word in ("locked", "busy", "unable to open"))
    return bool(result) and result[0] == "ok"


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)


def missing_columns(conn: sqlite3.Connection, table: str, wanted: list[str]) -> list[str]:
    """Columns of ``wanted`` that ``table`` lacks (empty when the table does not exist)."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    return [c for c in wanted if present and c not in present]


def file_missing_columns(path: Path, table: str, wanted: list[str]) -> list[str]:
    """``missing_columns`` of an existing file, read without changing a byte of it."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        with closing(_read_only(path)) as conn:
            return missing_columns(conn, table, wanted)
    except sqlite3.DatabaseError:
        return []  # the normal open reports or waits out what is wrong


def foreign_reason(
    path: Path,
    meta_table: str,
    table: str,
    columns: list[str],
    database_id: str | None,
    not_before: float,
) -> str | None:
    """Why the file now at ``path`` is not the node's own, or None when it may be written.

    Its own file (the same database id: a restored backup of it) and a fresh
    file a peer node created after the shared file vanished (another id, made
    after ``not_before``) are the node's to write; anything else is foreign.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with closing(_read_only(path)) as conn:
            try:
                row = conn.execute(f"SELECT database_id, created_at FROM {meta_table}").fetchone()
            except sqlite3.OperationalError:
                return f"no {meta_table} table: not a sensorfleet database"
            missing = missing_columns(conn, table, columns)
    except sqlite3.DatabaseError as exc:
        message = str(exc).lower()
        if any(word in message for word in ("locked", "busy", "unable to open")):
            return None  # judged on the next open
        return f"unreadable: {exc}"
    if missing:
        return f"{table} lacks columns {', '.join(missing)}"
    if row is None or database_id is None or str(row[0]) == database_id:
        return None
    try:
        created = datetime.fromisoformat(str(row[1])).timestamp()
    except ValueError:
        created = 0.0
    if created >= not_before:
        return None
    return f"another database id ({row[0]}, created {row[1]})"


def aside_name(path: Path, reason: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    serial = 1
    while any(Path(f"{target}{suffix}").exists() for suffix in COMPANIONS):
        serial += 1
        target = path.with_name(f"{path.name}.{reason}-{stamp}-{serial}")
    return target


def quarantine(path: Path, reason: str = "corrupt") -> Path:
    """Move a file and its -wal/-shm/-journal aside as ``NAME.<reason>-<time>``; return it."""
    target = aside_name(path, reason)
    for suffix in COMPANIONS:
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target


def file_key(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of a path, or None when nothing is there."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def set_aside_stale_companions(
    path: Path, target: Path, ours: dict[str, tuple[int, int] | None]
) -> list[Path]:
    """Move ``-wal``/``-shm`` that belonged to the node's previous file out of the way.

    Only files that are still the very ones the node had open (same inode) are
    moved: a peer may already have started a fresh file with its own WAL.
    They are renamed ``<target>.stale-wal`` (not a name SQLite pairs with
    any database) and kept.
    """
    moved = []
    for suffix in ("-wal", "-shm"):
        known = ours.get(suffix)
        source = Path(f"{path}{suffix}")
        if known is not None and file_key(source) == known:
            destination = Path(f"{target}.stale{suffix}")
            os.replace(source, destination)
            moved.append(destination)
    return moved


def unusable_reason(path: Path) -> str | None:
    """Why ``path`` can never hold the node's database, or None when it may.

    For a check at start, before anything is opened: a device (``/dev/null``),
    a pipe, a folder, a file or folder that cannot be written would otherwise
    be retried as if the database were only busy. A new file in a writable
    folder, an existing database, and folders still to be created are fine.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return _folder_reason(path.parent)
    except OSError as exc:
        return f"{path} cannot be examined ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return f"{path} is a folder; expected the path of a database file"
    if not stat.S_ISREG(mode):
        return f"{path} {not_regular_file(mode)}; expected the path of a database file"
    if not _may(path, os.R_OK | os.W_OK):
        return f"{path} cannot be written (a read-only file or filesystem)"
    return _folder_reason(path.parent)


def _folder_reason(folder: Path) -> str | None:
    """Why no database (with its -wal, -shm or -journal beside it) can be made in ``folder``,
    which is created when missing: the nearest folder that exists must be writable."""
    for candidate in (folder, *folder.parents):
        try:
            mode = os.stat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            return f"folder {candidate} cannot be examined ({exc.strerror})"
        if not stat.S_ISDIR(mode):
            return f"{candidate} is not a folder, so no database can be made under it"
        if not _may(candidate, os.W_OK | os.X_OK):
            return (
                f"folder {candidate} cannot be written (a read-only folder or filesystem); "
                "the database and its -wal and -shm files are made there"
            )
        return None
    return None


def _may(path: Path, mode: int) -> bool:
    # The effective user's rights, and EROFS for a read-only mount even for root.
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)
