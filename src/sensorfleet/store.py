"""The node's SQLite file: schema, the one connection factory, batched writes.

One function opens connections with the pragmas; one context manager owns
transactions (``BEGIN IMMEDIATE`` … ``COMMIT``); retries wrap whole
transactions and only transient errors (busy, locked, I/O, full disk).
The store knows rows and columns, never how readings are generated.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from .config import Database
from .readings import COLUMNS, Row

log = structlog.get_logger("sensorfleet.store")

SCHEMA_VERSION = 1
OPEN_ATTEMPTS = 12  # with a 5 s busy timeout and backoff: about a minute
TABLE = "sensor_readings"
META_TABLE = "sensorfleet_meta"

# The reading columns as SQLite declares them (shared with the central SQLite sink).
READING_COLUMNS_SQL = """\
    timestamp TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    temperature REAL,
    vibration REAL,
    voltage REAL,
    status_code INTEGER NOT NULL DEFAULT 0,
    anomaly_flag INTEGER NOT NULL DEFAULT 0,
    anomaly_type TEXT,
    firmware_version TEXT,
    model TEXT,
    manufacturer TEXT,
    location TEXT"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
{READING_COLUMNS_SQL},
    synced INTEGER NOT NULL DEFAULT 0
);
-- Keeps "WHERE synced = 0 ORDER BY id" cheap however many synced rows pile up.
CREATE INDEX IF NOT EXISTS idx_{TABLE}_unsynced ON {TABLE}(id) WHERE synced = 0;
CREATE INDEX IF NOT EXISTS idx_{TABLE}_timestamp ON {TABLE}(timestamp);
CREATE INDEX IF NOT EXISTS idx_{TABLE}_sensor_time ON {TABLE}(sensor_id, timestamp);
CREATE TABLE IF NOT EXISTS {META_TABLE} (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    database_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    schema_version INTEGER NOT NULL
);
"""

INSERT_SQL = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

_TRANSIENT_WORDS = (
    "locked",
    "busy",
    "disk i/o",
    "unable to open",
    "database or disk is full",
    "readonly",
    "read-only",
    "no such table",  # the file was removed and recreated under us
)


def is_transient(exc: BaseException) -> bool:
    """True for errors that may pass if we wait: busy, locked, I/O, full disk."""
    if isinstance(exc, sqlite3.IntegrityError):
        return False
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        message = str(exc).lower()
        return any(word in message for word in _TRANSIENT_WORDS)
    return isinstance(exc, OSError)


def retrying(attempts: int, max_wait: float = 2.0) -> Retrying:
    """Tenacity policy for a whole transaction: exponential backoff, transient errors only."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.05, max=max_wait),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )


def connect(
    path: str | Path, settings: Database, access: Literal["create", "write", "read"] = "create"
) -> sqlite3.Connection:
    """Open a connection with the project's pragmas (the only place that does).

    ``access="create"`` is the owner's connection: it creates the file and sets
    the journal mode. ``"write"`` and ``"read"`` are a guest's (a collector's,
    a retention job's): the file must exist, its owner's journal mode is kept,
    and ``"read"`` cannot write at all.
    """
    if access == "create":
        target, uri = str(path), False
    else:
        mode = "rw" if access == "write" else "ro"
        target, uri = f"file:{quote(str(path))}?mode={mode}", True
    conn = sqlite3.connect(
        target,
        timeout=settings.busy_timeout_ms / 1000,
        isolation_level=None,  # we issue BEGIN IMMEDIATE ourselves
        check_same_thread=False,
        uri=uri,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    if access == "create":
        # On a new file this must precede the journal mode, which writes the header.
        # It lets retention hand freed pages back to the filesystem (incremental_vacuum)
        # instead of keeping the file at its largest; on an existing file it is a no-op.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute(f"PRAGMA journal_mode = {settings.journal_mode}").fetchone()[0]
        if str(mode).lower() != settings.journal_mode:
            log.warning(
                "journal mode not applied", wanted=settings.journal_mode, got=mode, path=str(path)
            )
    conn.execute(f"PRAGMA synchronous = {settings.synchronous}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    # Files written by older simulators lack the sync flag; add it rather than refuse them.
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
    if "synced" not in present:
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN synced INTEGER NOT NULL DEFAULT 0")


def ensure_schema(conn: sqlite3.Connection) -> str:
    """Create tables and indexes if needed; return the database id (made once)."""
    with transaction(conn):
        existing = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if existing:
            _add_missing_columns(conn)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            f"INSERT OR IGNORE INTO {META_TABLE} (singleton, database_id, created_at, "
            "schema_version) VALUES (1, ?, ?, ?)",
            (uuid.uuid4().hex, datetime.now(UTC).isoformat(), SCHEMA_VERSION),
        )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    row = conn.execute(f"SELECT database_id FROM {META_TABLE}").fetchone()
    return str(row[0])


def database_id(conn: sqlite3.Connection) -> str | None:
    """The file's database id, or None for a file without the meta table."""
    try:
        row = conn.execute(f"SELECT database_id FROM {META_TABLE}").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


# Files that belong to a database and must move with it: a hot journal or WAL
# left beside a fresh file would be replayed into it.
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def is_healthy(path: Path) -> bool:
    """False when the file exists but is not a usable SQLite database.

    Only regular files are judged: anything else at the path (a folder, say)
    is an outage to wait out, not a corrupt database to move aside.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return True
    try:
        uri = f"file:{quote(str(path))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        # Someone else holding the file, or no access right now, says nothing about its
        # contents; "not a database" and "malformed" do.
        message = str(exc).lower()
        return any(word in message for word in ("locked", "busy", "unable to open"))
    return bool(result) and result[0] == "ok"


def quarantine(path: Path) -> Path:
    """Move a corrupt file and its -wal/-shm/-journal aside (never delete); return the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    serial = 1
    while any(Path(f"{target}{suffix}").exists() for suffix in _COMPANIONS):
        serial += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{serial}")
    for suffix in _COMPANIONS:
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target


def insert_rows(conn: sqlite3.Connection, rows: Iterable[Row]) -> int:
    """Insert rows in one transaction; return how many were written."""
    with transaction(conn):
        before = conn.total_changes
        conn.executemany(INSERT_SQL, rows)
        return conn.total_changes - before


class Store:
    """One open database file, as the node's writer sees it.

    The file is checked at open (a corrupt file is moved aside, never
    deleted) and before each write: if it was removed or replaced, the store
    reopens it rather than writing into a deleted inode that nobody will read.
    After a transient failure on the same file it only reconnects, so an
    outage does not cost a full ``quick_check`` per retry.
    """

    def __init__(self, path: Path, settings: Database) -> None:
        self.path = path
        self.settings = settings
        self.retries = 0
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._pragmas: tuple[int, str] | None = None
        self.database_id: str | None = None

    def open(self, patient: bool = True) -> None:
        """Create the folder, file and schema as needed.

        ``patient`` retries a busy file for about a minute (start-up); a reopen
        during a flush tries once and leaves waiting to the writer's backoff.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not is_healthy(self.path):
            moved = quarantine(self.path)
            log.error(
                "corrupt database moved aside",
                path=str(self.path),
                moved_to=str(moved),
                action="starting a fresh file",
            )
        self._connect(patient)

    def _connect(self, patient: bool) -> None:
        if not patient:
            self._connect_once()
            return
        # Joining a file that many writers share, the schema step's BEGIN IMMEDIATE can
        # lose the race for the lock past one busy timeout (SQLite's busy handler is
        # not fair); retry the whole open as a flush would, for about a minute.
        policy = retrying(OPEN_ATTEMPTS)
        policy.before_sleep = self._log_open_retry
        for attempt in policy:
            with attempt:
                self._connect_once()

    def _log_open_retry(self, state: RetryCallState) -> None:
        log.warning(
            "database busy at open, retrying",
            path=str(self.path),
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        )

    def _connect_once(self) -> None:
        conn = connect(self.path, self.settings)
        try:
            self.database_id = ensure_schema(conn)
            stat = os.stat(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._inode = (stat.st_dev, stat.st_ino)
        self._pragmas = (self.settings.busy_timeout_ms, self.settings.synchronous)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _current(self) -> sqlite3.Connection:
        try:
            stat = os.stat(self.path)
            same_file = (stat.st_dev, stat.st_ino) == self._inode
        except OSError:
            same_file = False
        if not same_file:
            if self._inode is not None:
                log.warning("database file replaced, reopening", path=str(self.path))
                self._inode = None
            self.close()
            self.open(patient=False)
        elif self._conn is None:
            self._connect(patient=False)
        assert self._conn is not None
        wanted = (self.settings.busy_timeout_ms, self.settings.synchronous)
        if wanted != self._pragmas:  # changed by a live reload
            self._conn.execute(f"PRAGMA busy_timeout = {int(wanted[0])}")
            self._conn.execute(f"PRAGMA synchronous = {wanted[1]}")
            self._pragmas = wanted
        return self._conn

    def _count_retry(self, _state: object) -> None:
        self.retries += 1

    def write(
        self,
        rows: Sequence[Row] | Callable[[], Iterable[Row]],
        attempts: int | None = None,
    ) -> int:
        """Insert rows in one retried transaction; return how many were written.

        ``rows`` is a sequence, or a zero-argument callable returning fresh rows
        (a lazy iterator cannot be replayed by a retry, so it is not accepted).
        ``attempts`` overrides ``retry_attempts`` (the writer uses one attempt
        while it is already backing off, so the node loop never blocks long).
        """
        policy = retrying(attempts or self.settings.retry_attempts)
        policy.before_sleep = self._count_retry
        for attempt in policy:
            with attempt:
                try:
                    conn = self._current()
                    return insert_rows(conn, rows() if callable(rows) else rows)
                except BaseException:
                    self.close()  # reconnect (re-checking the file) on the next attempt
                    raise
        raise AssertionError("unreachable: tenacity reraises")
