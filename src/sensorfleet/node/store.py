"""The node's SQLite file: schema, the one connection factory, batched writes.

One function opens connections with the pragmas; one context manager owns
transactions (``BEGIN IMMEDIATE`` … ``COMMIT``); retries wrap whole
transactions and only transient errors (busy, locked, I/O, full disk).
The store knows rows and columns, never how readings are generated.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ..errors import InputError
from .config import Database
from .dbfile import (
    aside_name,
    file_key,
    file_missing_columns,
    foreign_reason,
    is_corrupt,
    is_healthy,
    missing_columns,
    quarantine,
    set_aside_stale_companions,
)
from .idfloor import Floors, IdFloor, raise_sequences, sequences
from .layout import (
    CLASSIC,
    LABEL_COLUMNS,
    TABLES_SCHEMA,
    TABLES_TABLE,
    TRUTH_KEY,
    TableLayout,
    truth_schema_sql,
    truth_table_of,
)
from .readings import COLUMNS, Row

log = structlog.get_logger("sensorfleet.store")

SCHEMA_VERSION = 1
OPEN_ATTEMPTS = 12  # with a 5 s busy timeout and backoff: about a minute
# A file with another database id made this long before ours was last seen is foreign;
# a younger one is a fresh file a peer node sharing the path started after ours vanished.
FOREIGN_GRACE_SECONDS = 60.0
TABLE = CLASSIC.table
META_TABLE = "sensorfleet_meta"

SCHEMA = (
    CLASSIC.node_schema_sql()
    + f"""CREATE TABLE IF NOT EXISTS {META_TABLE} (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    database_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    schema_version INTEGER NOT NULL
);
"""
)

INSERT_SQL = CLASSIC.insert_sql()

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


# How long the writer and the collector wait after consecutive failures before trying again:
# tenacity's exponential policy, the same as inside a transaction's retries, stretched out.
MAX_BACKOFF_SECONDS = 30.0


def backoff_after(failures: int, first: float = 0.5, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """Seconds to wait after ``failures`` failures in a row: ``first``, doubling, up to ``cap``."""
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = max(1, failures)
    return float(wait_exponential(multiplier=first, max=cap)(state))


def open_connection(
    path: str | Path, settings: Database, access: Literal["create", "write", "read"] = "create"
) -> sqlite3.Connection:
    """Open a connection with the project's pragmas (the only place that does).

    ``access="create"`` is the owner's connection: it creates the file and sets
    the journal mode. ``"write"`` and ``"read"`` are a guest's (a collector's,
    a retention job's): the file must exist, its owner's journal mode is kept,
    and ``"read"`` cannot write at all.
    """
    fresh = False
    if access == "create":
        target, uri = str(path), False
        fresh = _is_new_file(path)
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
        if fresh:
            # Setting auto-vacuum and the journal mode on a new file writes its header
            # twice, each a rollback-journal transaction with four syncs (journal,
            # folder, journal, file): 8 of a new file's 12 syncs, most of the time it
            # takes to open a fleet of per-sensor files. The file holds no reading yet:
            # the header is written without them and synced once below, file and folder.
            conn.execute("PRAGMA synchronous = OFF")
        # On a new file this must precede the journal mode, which writes the header.
        # It lets retention hand freed pages back to the filesystem (incremental_vacuum)
        # instead of keeping the file at its largest; on an existing file it is a no-op.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute(f"PRAGMA journal_mode = {settings.journal_mode}").fetchone()[0]
        if str(mode).lower() != settings.journal_mode:
            log.warning(
                "journal mode not applied", wanted=settings.journal_mode, got=mode, path=str(path)
            )
        if fresh and settings.synchronous != "off":
            # Before any commit: a WAL whose database file has no header on disk after a
            # power cut is discarded by SQLite, committed rows with it.
            _sync_file_and_folder(Path(path))
    conn.execute(f"PRAGMA synchronous = {settings.synchronous}")
    return conn


def _is_new_file(path: str | Path) -> bool:
    """True when nothing (or an empty file) is at ``path``: its header is still to be written."""
    try:
        return os.stat(path).st_size == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False  # let the open report what is wrong


def _sync_file_and_folder(path: Path) -> None:
    for target, flags in ((path, os.O_RDONLY), (path.parent, os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


class ForeignTableError(InputError):
    """An existing ``sensor_readings`` table lacks columns the node writes."""


def _check_columns(conn: sqlite3.Connection) -> None:
    # Files written by older simulators lack the sync flag; add it rather than refuse them.
    # Any other missing column means a table that is not ours: never alter it.
    missing = missing_columns(conn, TABLE, ["id", *COLUMNS])
    if missing:
        raise ForeignTableError([f"{TABLE}: lacks columns {', '.join(missing)}"])
    if missing_columns(conn, TABLE, ["synced"]):
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN synced INTEGER NOT NULL DEFAULT 0")


def ensure_schema(conn: sqlite3.Connection) -> str:
    """Create tables and indexes if needed; return the database id (made once).

    Raises ``ForeignTableError`` (the file untouched) when an existing
    ``sensor_readings`` table lacks reading columns.
    """
    with transaction(conn):
        _check_columns(conn)
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


TRUTH_SCHEMA = "truth"  # the name the truth file is attached under


def ensure_table(conn: sqlite3.Connection, layout: TableLayout) -> None:
    """Create an equipment table and its indexes, or check an existing one: a channel the
    catalogue gained since is added (a nullable column); any other missing column, or
    inline labels in a table now written without them, is a ``ForeignTableError``."""
    present = [row[1] for row in conn.execute(f"PRAGMA table_info({layout.table})")]
    if present:
        channels = {column.name for column in layout.channels}
        missing = [c for c in layout.names if c not in present]
        fixed = [name for name in missing if name not in channels]
        if fixed:
            raise ForeignTableError([f"{layout.table}: lacks columns {', '.join(fixed)}"])
        if "state" in present and not layout.with_role("label"):
            raise ForeignTableError(
                [f"{layout.table}: holds inline labels, but labels.mode is hidden"]
            )
        for name in missing:
            conn.execute(
                f"ALTER TABLE {layout.table} ADD COLUMN {layout.column(name).sqlite_sql()}"
            )
    for statement in layout.node_schema_sql().split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(TABLES_SCHEMA)
    conn.execute(
        f"INSERT INTO {TABLES_TABLE} (name, type, layout) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET type = excluded.type, layout = excluded.layout",
        (layout.table, layout.type_name, layout.to_json()),
    )


@dataclass(frozen=True)
class TableRows:
    """Rows for one table of the node file, and for hidden labels their ground truth.

    ``rows`` and ``truth`` are zero-argument callables returning fresh iterators (a
    retry replays them); ``truth`` yields ``(sensor_id, timestamp, *labels)`` in the
    order of ``rows``.
    """

    layout: TableLayout
    rows: Callable[[], Iterable[Row]]
    truth: Callable[[], Iterable[Row]] | None = None


def _insert_truth(
    conn: sqlite3.Connection, part: TableRows, database: str, last_id: int, count: int
) -> None:
    # Within one BEGIN IMMEDIATE no other writer interleaves, and AUTOINCREMENT hands out
    # consecutive ids: the batch's rows have ids last_id - count + 1 … last_id, in order.
    assert part.truth is not None
    table = f"{TRUTH_SCHEMA}.{truth_table_of(part.layout.type_name)}"
    first = last_id - count + 1
    rows = ((database, first + offset, *truth) for offset, truth in enumerate(part.truth()))
    with_labels = [c.name for c in LABEL_COLUMNS]
    names = [*TRUTH_KEY, *with_labels]
    conn.executemany(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows
    )


def insert_tables(
    conn: sqlite3.Connection,
    parts: Sequence[TableRows],
    also: Callable[[sqlite3.Connection], None] | None = None,
    database: str | None = None,
    first: Callable[[sqlite3.Connection], None] | None = None,
) -> int:
    """Insert every part's rows (and truth) in one transaction, ``first`` before them and
    ``also`` after them in it; return rows written."""
    with transaction(conn):
        if first is not None:
            first(conn)
        written = 0
        for part in parts:
            before = conn.total_changes
            conn.executemany(part.layout.insert_sql(), part.rows())
            count = conn.total_changes - before
            written += count
            if part.truth is not None and count:
                last_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                _insert_truth(conn, part, database or "", int(last_id), count)
        if also is not None:
            also(conn)
        return written


def database_id(conn: sqlite3.Connection) -> str | None:
    """The file's database id, or None for a file without the meta table."""
    try:
        row = conn.execute(f"SELECT database_id FROM {META_TABLE}").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


def insert_rows(
    conn: sqlite3.Connection,
    rows: Iterable[Row],
    also: Callable[[sqlite3.Connection], None] | None = None,
) -> int:
    """Insert classic rows in one transaction (with ``also`` in it); return how many were
    written."""
    return insert_tables(conn, [TableRows(CLASSIC, lambda: rows)], also)


class Lease(Protocol):
    """Who may write which sensor ids into a file (see ``lease.FileLease``)."""

    sensor_ids: list[str]

    def acquire(self, conn: sqlite3.Connection, patient: bool = True) -> None: ...
    def due(self) -> bool: ...
    def due_at(self) -> float: ...
    def beat(self, conn: sqlite3.Connection) -> None: ...
    def release(self, conn: sqlite3.Connection) -> None: ...
    def drop(self, sensor_ids: Iterable[str]) -> None: ...
    def change_ids(self, conn: sqlite3.Connection, sensor_ids: Iterable[str]) -> None: ...


class Store:
    """One open database file, as the node's writer sees it.

    The file is checked at open (a corrupt file is moved aside, never
    deleted) and before each write: if it was removed or replaced, the store
    reopens it rather than writing into a deleted inode that nobody will read,
    moves the old file's ``-wal``/``-shm`` out of the way so SQLite never
    replays them into the new file, and moves a foreign file aside. A write
    that finds the file corrupt moves it aside and goes on in a fresh file.
    After a transient failure on the same file it only reconnects, so an
    outage does not cost a full ``quick_check`` per retry.
    """

    def __init__(self, path: Path, settings: Database, truth_path: Path | None = None) -> None:
        self.path = path
        self.settings = settings
        # Equipment tables this file holds besides sensor_readings, by table name.
        self.layouts: dict[str, TableLayout] = {}
        # The ground-truth file of hidden labels, attached to every connection.
        self.truth_path = truth_path
        self._ready: set[TableLayout] = set()  # layouts checked on the current connection
        self.retries = 0
        self.moved_aside: Counter[str] = Counter()  # files moved aside, by reason
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._companions: dict[str, tuple[int, int] | None] = {}
        self._pragmas: tuple[int, str] | None = None
        self._known_good_at = 0.0  # wall time the file was last seen to be ours
        self.database_id: str | None = None
        # The highest id each table of this database handed out, kept where a restore
        # cannot roll it back (the side file, and this process's memory while it runs).
        self.id_floor = IdFloor(path)
        self.restores = 0  # times the file was found behind its floors (a restored backup)
        self._high: Floors = {}
        self._floor_unsaved = False
        # Taken at every (re)open, refreshed in flush transactions, given back at finish.
        self.lease: Lease | None = None

    def open(self, patient: bool = True) -> None:
        """Create the folder, file and schema as needed.

        ``patient`` retries a busy file for about a minute (start-up); a reopen
        during a flush tries once and leaves waiting to the writer's backoff.
        Raises ``ForeignTableError`` at start for a table that is not ours.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not is_healthy(self.path):
            self._move_aside("corrupt", "quick_check failed or not a database")
        # Checked read-only first: opening for writing would already change the header.
        missing = file_missing_columns(self.path, TABLE, ["id", *COLUMNS])
        if missing:
            raise self._foreign_table([f"{TABLE}: lacks columns {', '.join(missing)}"])
        self._connect(patient)

    def _foreign_table(self, problems: list[str]) -> ForeignTableError:
        return ForeignTableError(
            [
                f"{self.path}: {problem}; this is not a sensorfleet table and is left "
                "unchanged: choose another database.path or move the file away"
                for problem in problems
            ]
        )

    def _move_aside(self, reason: str, why: str) -> None:
        self.close()
        self._inode = None
        moved = quarantine(self.path, reason)
        self.moved_aside[reason] += 1
        log.error(
            f"{reason} database moved aside",
            path=str(self.path),
            moved_to=str(moved),
            reason=why,
            action="starting a fresh file",
        )

    def _connect(self, patient: bool) -> None:
        if not patient:
            self._connect_once(patient)
            return
        # Joining a file that many writers share, the schema step's BEGIN IMMEDIATE can
        # lose the race for the lock past one busy timeout (SQLite's busy handler is
        # not fair); retry the whole open as a flush would, for about a minute.
        policy = retrying(OPEN_ATTEMPTS)
        policy.before_sleep = self._log_open_retry
        for attempt in policy:
            with attempt:
                self._connect_once(patient)

    def _log_open_retry(self, state: RetryCallState) -> None:
        log.warning(
            "database busy at open, retrying",
            path=str(self.path),
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        )

    def _connect_once(self, patient: bool) -> None:
        conn = open_connection(self.path, self.settings)
        self._ready = set()
        try:
            try:
                found = ensure_schema(conn)
                if found != self.database_id:  # another database: its ids are its own
                    self.database_id, self._high = found, {}
                self._attach_truth(conn)
                self._ensure_tables(conn, list(self.layouts.values()))
            except ForeignTableError as exc:
                raise self._foreign_table(exc.problems) from None
            if self.lease is not None:
                self.lease.acquire(conn, patient)
            # A restore made while the node was stopped is caught here, before any write.
            with transaction(conn):
                self._guard_ids(conn, from_file=True)
            inode = file_key(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._inode = inode
        # The WAL and shared-memory files this connection uses: if the database is
        # replaced under us, these (and only these) must not meet the new file.
        self._companions = {s: file_key(f"{self.path}{s}") for s in ("-wal", "-shm")}
        self._known_good_at = time.time()
        self._pragmas = (self.settings.busy_timeout_ms, self.settings.synchronous)

    def add_layout(self, layout: TableLayout) -> None:
        """Hold ``layout``'s table too: created at the next open, or by the first write."""
        if layout.table != TABLE:
            self.layouts[layout.table] = layout

    def _attach_truth(self, conn: sqlite3.Connection) -> None:
        if self.truth_path is None:
            return
        self.truth_path.parent.mkdir(parents=True, exist_ok=True)
        conn.execute(f"ATTACH DATABASE ? AS {TRUTH_SCHEMA}", (str(self.truth_path),))
        conn.execute(f"PRAGMA {TRUTH_SCHEMA}.journal_mode = {self.settings.journal_mode}")

    def _ensure_tables(self, conn: sqlite3.Connection, layouts: list[TableLayout]) -> None:
        wanted = [layout for layout in layouts if layout not in self._ready]
        if not wanted:
            return
        with transaction(conn):
            for layout in wanted:
                ensure_table(conn, layout)
                if self.truth_path is not None and not layout.with_role("label"):
                    conn.execute(truth_schema_sql(layout.type_name).format(schema=TRUTH_SCHEMA))
        self._ready.update(wanted)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _release_replaced(self) -> None:
        """The file at our path is no longer the one we had open: let go of ours safely."""
        target = aside_name(self.path, "replaced")
        conn = self._conn
        preserved = None
        if conn is not None and self.path.is_file():
            # Our old file is unlinked; keep what it held (rows not yet synced) as a copy.
            try:
                conn.execute("VACUUM INTO ?", (str(target),))
                preserved = str(target)
            except sqlite3.Error as exc:
                log.warning("replaced database not preserved", error=str(exc), path=str(target))
        # SQLite does not checkpoint a database whose file was unlinked, so its WAL stays
        # at our path: moved aside, it is never replayed into the file now there.
        stale = set_aside_stale_companions(self.path, target, self._companions)
        self.close()
        self._inode = None
        log.warning(
            "database file replaced, reopening",
            path=str(self.path),
            previous_preserved_as=preserved,
            stale_files_moved=[str(p) for p in stale],
        )

    def _check_owner(self) -> None:
        """Move a foreign file now at our path aside before anything is written into it."""
        why = foreign_reason(
            self.path,
            META_TABLE,
            TABLE,
            ["id", *COLUMNS],
            self.database_id,
            not_before=self._known_good_at - FOREIGN_GRACE_SECONDS,
        )
        if why is not None:
            self._move_aside("foreign", why)

    def _current(self) -> sqlite3.Connection:
        same_file = self._inode is not None and file_key(self.path) == self._inode
        if not same_file:
            if self._inode is not None:
                self._release_replaced()
                self._check_owner()
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
        """Insert classic rows in one retried transaction; return how many were written.

        ``rows`` is a sequence, or a zero-argument callable returning fresh rows
        (a lazy iterator cannot be replayed by a retry, so it is not accepted).
        """
        produce = rows if callable(rows) else (lambda: rows)
        return self.write_tables([TableRows(CLASSIC, produce)], attempts)

    def write_tables(self, parts: Sequence[TableRows], attempts: int | None = None) -> int:
        """Insert rows into their tables (and hidden labels into the truth file) in one
        retried transaction; return how many readings were written.

        ``attempts`` overrides ``retry_attempts`` (the writer uses one attempt
        while it is already backing off, so the node loop never blocks long).
        A file found corrupt is moved aside and the rows go to a fresh file.
        """
        try:
            return self._write(parts, attempts)
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc) or not self.path.is_file():
                raise
            self._move_aside("corrupt", str(exc))
        self.open(patient=False)
        return self._write(parts, attempts)

    def _write(self, parts: Sequence[TableRows], attempts: int | None) -> int:
        policy = retrying(attempts or self.settings.retry_attempts)
        policy.before_sleep = self._count_retry
        for layout in (part.layout for part in parts):
            self.add_layout(layout)
        for attempt in policy:
            with attempt:
                try:
                    conn = self._current()
                    self._ensure_tables(conn, [p.layout for p in parts if p.layout.table != TABLE])
                    lease = self.lease
                    beat = lease.beat if lease is not None and lease.due() else None
                    # The guard also catches a restore in place (same inode, older contents).
                    written = insert_tables(
                        conn,
                        parts,
                        partial(self._after_rows, beat),
                        self.database_id,
                        self._guard_ids,
                    )
                except BaseException:
                    self.close()  # reconnect (re-checking the file) on the next attempt
                    raise
                self._known_good_at = time.time()
                return written
        raise AssertionError("unreachable: tenacity reraises")

    def _guard_ids(self, conn: sqlite3.Connection, from_file: bool = False) -> None:
        """Inside a write transaction: each table's next id is above every id it ever handed
        out in this database. A file behind that is a restored backup: its sequences rise.

        The side file is read at open; between opens the floors in memory are current
        (every flush moves them to the file's newest ids, whoever wrote those), so a
        restore in place is caught without a read per flush.
        """
        assert self.database_id is not None
        floors = dict(self._high)
        if from_file:
            for table, high in self.id_floor.read(self.database_id).items():
                floors[table] = max(floors.get(table, 0), high)
        behind = raise_sequences(conn, floors) if floors else {}
        if behind:
            self.restores += 1
            for table, (last, floor) in behind.items():
                log.warning(
                    "database restore detected",
                    path=str(self.path),
                    database_id=self.database_id,
                    table=table,
                    file_last_id=last,
                    ids_handed_out=floor,
                    action=f"new rows get ids above {floor}, never an id already used",
                )
        self._high = floors

    def _after_rows(
        self, beat: Callable[[sqlite3.Connection], None] | None, conn: sqlite3.Connection
    ) -> None:
        self._record_ids(conn)
        if beat is not None:
            beat(conn)

    def _record_ids(self, conn: sqlite3.Connection) -> None:
        """Inside the write transaction, after the rows: save the new floors beside the file."""
        assert self.database_id is not None
        for table, last in sequences(conn).items():
            self._high[table] = max(self._high.get(table, 0), last)
        try:
            self.id_floor.record(self.database_id, self._high)
        except OSError as exc:
            # The rows matter more than the floor: they are written, and central stores
            # still keep both readings should a restore reuse an id (see docs/sync.md).
            if not self._floor_unsaved:
                log.warning("row id floor not saved", path=str(self.id_floor.path), error=str(exc))
            self._floor_unsaved = True
        else:
            self._floor_unsaved = False

    def change_sensor_ids(self, sensor_ids: Iterable[str]) -> None:
        """Lease exactly these sensor ids from now on, before a live edit writes under them.

        Raises ``LeaseConflictError`` (nothing changed) when a live node holds one
        of them, or when the file cannot be checked now. With the file not open
        (an outage), the reopen takes the leases, and ``LeaseLostError`` then
        drops a sensor whose id turned out to be held.
        """
        lease = self.lease
        if lease is None:
            return
        if self._conn is None:
            lease.sensor_ids = sorted(set(sensor_ids))
        else:
            lease.change_ids(self._conn, sensor_ids)

    def heartbeat_due_at(self) -> float | None:
        """Wall time of the next lease heartbeat (None without a lease)."""
        return None if self.lease is None else self.lease.due_at()

    def heartbeat(self) -> None:
        """Refresh the lease when due and no flush did (a small transaction of its own)."""
        lease = self.lease
        if lease is None or not lease.due() or self._conn is None:
            return
        try:
            with transaction(self._conn):
                lease.beat(self._conn)
        except sqlite3.Error as exc:  # the next flush or heartbeat tries again
            log.debug("lease heartbeat failed", error=str(exc), path=str(self.path))

    def finish(self) -> None:
        """Give the lease back and close (a clean exit)."""
        if self.lease is not None and self._conn is not None:
            try:
                self.lease.release(self._conn)
            except sqlite3.Error as exc:  # it times out on its own
                log.warning("lease not released", error=str(exc), path=str(self.path))
        self.close()
