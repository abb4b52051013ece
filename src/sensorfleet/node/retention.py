"""Node-side retention: delete rows a collector has shipped (``synced = 1``), never others.

Two rules, from ``database.retention``, either or both:

- ``synced_max_age_seconds``: synced rows whose ``timestamp`` is older than
  this go (timestamps are ISO-8601 UTC text, so text order is time order);
- ``max_size_mb``: while the pages in use exceed this, the oldest synced rows
  (lowest ids) go, down to 90 % of it so the next check has room.

Deletes run in chunks, one short ``BEGIN IMMEDIATE`` transaction each, with
a pause between them so the node's writer is never starved. SQLite reuses
freed pages, so a file kept under the size stops growing; it only shrinks
on disk if it was created with ``auto_vacuum = INCREMENTAL`` (freed pages are
then returned too) or after an offline ``VACUUM``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import structlog

from . import store
from .clock import format_instant
from .config import Database, Retention
from .layout import TABLES_TABLE

log = structlog.get_logger("sensorfleet.retention")


def delete_old_synced(table: str) -> str:
    """Delete a chunk of ``table``'s synced rows older than a cutoff."""
    return (
        f"DELETE FROM {table} WHERE id IN "
        f"(SELECT id FROM {table} WHERE synced = 1 AND timestamp < ? LIMIT ?)"
    )


def delete_oldest_synced(table: str) -> str:
    """Delete a chunk of ``table``'s oldest synced rows."""
    return (
        f"DELETE FROM {table} WHERE id IN "
        f"(SELECT id FROM {table} WHERE synced = 1 ORDER BY id LIMIT ?)"
    )


DELETE_OLD_SYNCED = delete_old_synced(store.TABLE)
DELETE_OLDEST_SYNCED = delete_oldest_synced(store.TABLE)


def reading_tables(conn: sqlite3.Connection) -> list[str]:
    """``sensor_readings`` and every equipment table the file's registry names."""
    try:
        found = conn.execute(f"SELECT name FROM {TABLES_TABLE} ORDER BY name").fetchall()
    except sqlite3.OperationalError:
        found = []  # a file of classic sensors only
    return [store.TABLE, *(str(name) for (name,) in found)]


# Stop deleting for size at this share of the limit, so every check is not a delete.
SIZE_TARGET = 0.9
_INCREMENTAL = 2  # PRAGMA auto_vacuum value
_VACUUM_PAGES = 1000


@dataclass(frozen=True)
class RetentionResult:
    """What one check did."""

    deleted_by_age: int
    deleted_by_size: int
    used_bytes: int
    within_size: bool

    @property
    def deleted(self) -> int:
        return self.deleted_by_age + self.deleted_by_size


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the pages holding data (the file's size less its free pages)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)


def _delete_chunks(
    conn: sqlite3.Connection,
    sql: str,
    params: Callable[[], Sequence[object]],
    attempts: int,
    pause: float,
    done: Callable[[], bool] = lambda: False,
    once: bool = False,
) -> int:
    deleted = 0
    while not done():
        for attempt in store.retrying(attempts):
            with attempt, store.transaction(conn):
                count = conn.execute(sql, params()).rowcount
        deleted += count
        if count == 0:
            break
        time.sleep(pause)  # let the node's writer take the lock between chunks
        if once:
            break
    return deleted


def _release_free_pages(
    conn: sqlite3.Connection, attempts: int, pause: float, stopping: Callable[[], bool]
) -> None:
    """Give free pages back to the disk, a few MB per (autocommit) transaction."""
    while not stopping() and conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
        for attempt in store.retrying(attempts):
            with attempt:
                # executescript steps the pragma to the end; execute() would free one page.
                conn.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES});")
        time.sleep(pause)


def apply_retention(
    conn: sqlite3.Connection,
    rules: Retention,
    now: float,
    *,
    chunk: int = 2000,
    attempts: int = 5,
    pause: float = 0.005,
    stopping: Callable[[], bool] = lambda: False,
) -> RetentionResult:
    """Delete synced rows by age and/or size on an open node connection, from every readings
    table (``sensor_readings`` and each equipment table); never unsynced rows.

    For size, the tables give up a chunk of their oldest synced rows in turn.
    ``stopping`` is asked between chunks, so a node shutting down is not held up.
    """
    by_age = by_size = 0
    tables = reading_tables(conn)
    if rules.synced_max_age_seconds is not None:
        cutoff = format_instant(now - rules.synced_max_age_seconds)
        for table in tables:
            by_age += _delete_chunks(
                conn, delete_old_synced(table), lambda: (cutoff, chunk), attempts, pause, stopping
            )
    within = True
    if rules.max_size_mb is not None:
        limit = rules.max_size_mb * 1024 * 1024
        target = limit * SIZE_TARGET
        over = used_bytes(conn) > limit
        while over and used_bytes(conn) > target and not stopping():
            freed = sum(
                _delete_chunks(
                    conn,
                    delete_oldest_synced(table),
                    lambda: (chunk,),
                    attempts,
                    pause,
                    done=lambda: stopping() or used_bytes(conn) <= target,
                    once=True,
                )
                for table in tables
            )
            by_size += freed
            if not freed:
                break  # only unsynced rows left
        within = used_bytes(conn) <= limit
    if (by_age or by_size) and conn.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL:
        _release_free_pages(conn, attempts, pause, stopping)
    return RetentionResult(by_age, by_size, used_bytes(conn), within)


class RetentionWorker:
    """A background thread applying retention to the node's files every check interval.

    It opens its own guest connection for each check (so a replaced file is
    simply the file at the path next time) and survives a failing check.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        database: Database,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.database = database
        self.rules = database.retention
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self.checks = 0
        self.deleted = 0

    @staticmethod
    def wanted(database: Database) -> bool:
        """True when the config asks for any retention rule."""
        rules = database.retention
        return rules.synced_max_age_seconds is not None or rules.max_size_mb is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for the chunk in progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def check(self, path: Path) -> RetentionResult | None:
        """Apply the rules to one file now; None if the file does not exist (yet)."""
        if not path.exists():
            return None
        started = time.monotonic()
        with closing(store.open_connection(path, self.database, "write")) as conn:
            result = apply_retention(
                conn,
                self.rules,
                self._clock(),
                attempts=self.database.retry_attempts,
                stopping=self._stop.is_set,
            )
        self.checks += 1
        self.deleted += result.deleted
        fields = {
            "path": str(path),
            "deleted_by_age": result.deleted_by_age,
            "deleted_by_size": result.deleted_by_size,
            "used_mb": round(result.used_bytes / 1048576, 2),
            "ms": round((time.monotonic() - started) * 1000, 1),
        }
        if result.deleted:
            log.info("retention applied", **fields)
        if not result.within_size:
            log.warning("retention cannot reach size: unsynced rows fill the file", **fields)
        return result

    def _run(self) -> None:
        interval = self.rules.check_interval_seconds
        while not self._stop.is_set():
            for path in self.paths:
                if self._stop.is_set():
                    break
                try:
                    self.check(path)
                except (sqlite3.Error, OSError) as exc:
                    log.warning("retention failed", path=str(path), error=str(exc))
            self._stop.wait(interval)
