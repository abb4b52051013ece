"""Which databases a report reads: node files, folders of them, central stores.

A source is one table holding the node's reading columns: in an SQLite file,
or in a PostgreSQL central store given as a ``postgresql://`` URL.
Node files (written by ``sensorfleet run``) have ``synced`` and a meta table
with the file's ``database_id``; a central store (written by ``sensorfleet
sync``) has no ``synced`` column but a ``database_id`` per row naming the node
file it came from. Files are opened read-only, so a report never changes a
database, even one a node is writing to at the same time.

Problems with one source (missing, not SQLite, no readings table) are
collected as one line each; the other sources are still read.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from .._problems import not_regular_file
from .._redaction import redact, scrub, secrets_of
from ..node import store
from ..node.config import Database
from . import postgres
from .table import NODE_COLUMNS, ReportSource

DATABASE_SUFFIXES: tuple[str, ...] = (".db", ".sqlite", ".sqlite3")
_SQLITE_HEADER = b"SQLite format 3\x00"
_READ_SETTINGS = Database(busy_timeout_ms=10_000)


# Page cache per read connection. With the aggregation's 25,000-row chunks
# each GROUP BY sort fits in memory; measured on a 4.8M-row file, a bigger
# cache only raised the footprint without making the scan faster.
CACHE_KIB = 4 * 1024


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection: never creates the file or changes its journal mode."""
    conn = store.open_connection(path, _READ_SETTINGS, access="read")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return conn


def database_errors(source: ReportSource) -> tuple[type[Exception], ...]:
    """Exceptions that mean "this database cannot be read" for the source's driver."""
    if source.url is None:
        return (sqlite3.Error, ValueError)
    import psycopg

    return (psycopg.Error, ValueError)


@contextmanager
def open_source(source: ReportSource) -> Iterator[Any]:
    """A read-only connection to the source's database, closed on exit."""
    if source.url is not None:
        conn = postgres.open_postgres(source.url)
        try:
            yield conn
        finally:
            conn.close()
        return
    assert source.path is not None
    with closing(open_readonly(source.path)) as lite:
        yield lite


def expand_path(argument: str) -> tuple[list[Path], str | None]:
    """A file named on the command line, or the databases inside a folder; or a problem."""
    path = Path(argument)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATABASE_SUFFIXES)
        if not found:
            suffixes = ", ".join(f"*{s}" for s in DATABASE_SUFFIXES)
            return [], f"{argument}: no database files ({suffixes}) in this folder"
        return found, None
    if not path.exists():
        return [], f"{argument}: no such file or folder"
    return [path], None


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f'PRAGMA table_info("{table}")')}


def _slicing(conn: sqlite3.Connection, table: str, columns: set[str]) -> str:
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
        return "rowid"
    except sqlite3.OperationalError:  # a WITHOUT ROWID table
        return "key" if {"database_id", "source_row_id"} <= columns else "none"


def inspect(path: Path) -> ReportSource:
    """Describe the readings table of ``path``; raise ``ValueError`` with the reason if none."""
    try:
        # Non-blocking, so a named pipe cannot hold the report waiting for a writer
        # (no effect on a regular file); anything but a regular file is refused.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            mode = os.fstat(descriptor).st_mode
            if not stat.S_ISREG(mode):
                raise ValueError(f"{not_regular_file(mode)}; expected a database file")
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ValueError(f"cannot read the file ({exc.strerror or exc})") from None
    if header != _SQLITE_HEADER:
        if not header:
            raise ValueError("empty file, not a database written by sensorfleet")
        raise ValueError("not an SQLite database")
    try:
        with closing(open_readonly(path)) as conn:
            tables = [
                str(row[0])
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            # The node's own table name first, then any table with the reading columns.
            ordered = sorted(tables, key=lambda name: name != store.TABLE)
            for table in ordered:
                columns = _columns(conn, table)
                if set(NODE_COLUMNS) <= columns:
                    central = "database_id" in columns and "synced" not in columns
                    return ReportSource(
                        path=path,
                        table=table,
                        kind="central" if central else "node",
                        has_synced="synced" in columns,
                        database_id=None if central else store.database_id(conn),
                        slicing=_slicing(conn, table, columns),
                    )
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"cannot read the database ({exc})") from None
    listed = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "") if tables else "none"
    raise ValueError(
        f"no {store.TABLE} table with the reading columns (tables: {listed}); "
        "expected a database written by 'sensorfleet run' or 'sensorfleet sync'"
    )


def find_sources(arguments: Sequence[str]) -> tuple[list[ReportSource], list[str]]:
    """Readable sources among ``arguments``, and one problem line per unusable one."""
    sources: list[ReportSource] = []
    problems: list[str] = []
    seen: set[str] = set()
    for argument in arguments:
        if postgres.is_url(argument):
            if argument in seen:
                continue
            seen.add(argument)
            try:
                sources.append(postgres.inspect_url(argument))
            except ValueError as exc:
                reason = scrub(str(exc), secrets_of(argument))
                problems.append(f"{redact(argument)}: {reason}")
            continue
        paths, problem = expand_path(argument)
        if problem:
            problems.append(problem)
        for path in paths:
            resolved = str(path.resolve())
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                sources.append(inspect(path))
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
    return sources, problems
