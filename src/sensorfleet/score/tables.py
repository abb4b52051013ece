"""Reading named columns from a CSV file, a JSON-lines file or an SQLite table.

Predictions and ground-truth files share this reader. Each column comes back
as a ``TextColumn`` (see ``columns``), so ten million rows never become ten
million Python objects on the fast paths: an unquoted CSV file is split with
numpy, and an SQLite table is read 250,000 rows at a time with one
``group_concat`` per column. Quoted CSV, JSON lines, tables without a rowid
and PostgreSQL take the ordinary row-by-row path.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..report.sources import open_readonly
from .columns import Ints, TextColumn, concat, from_strings, split_joined

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
ROWS_PER_QUERY = 250_000  # measured: larger slices were no faster, and held more memory
_SEPARATOR = "\x1e"  # ASCII record separator: never in an id, a number or a timestamp


class TableError(ValueError):
    """The file cannot be read as a table; the message says why and what was expected."""


@dataclass(frozen=True)
class Columns:
    """The columns read from one table: name → values, all of one length."""

    label: str  # the file (and table) they came from, for messages
    rows: int
    values: dict[str, TextColumn]
    names: tuple[str, ...]  # every column the table has, read or not


def split_table_argument(argument: str) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE?table=NAME`` (an SQLite table other than the only one)."""
    if "?table=" in argument:
        path, table = argument.rsplit("?table=", 1)
        return Path(path), table
    return Path(argument), None


def file_kind(path: Path) -> str:
    """``sqlite``, ``jsonl`` or ``csv``: by the file's first bytes, then its suffix."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise TableError(f"cannot read the file ({exc.strerror or exc})") from None
    if head == SQLITE_HEADER:
        return "sqlite"
    if path.suffix.lower() in SQLITE_SUFFIXES and head:
        raise TableError("not an SQLite database")
    if path.suffix.lower() in JSON_SUFFIXES or head.lstrip()[:1] == b"{":
        return "jsonl"
    return "csv"


def read_file(path: Path, wanted: Sequence[str], table: str | None = None) -> Columns:
    """The ``wanted`` columns that the file has (others are left out, not an error)."""
    if not path.exists():
        raise TableError("no such file")
    if path.is_dir():
        raise TableError("is a folder; expected a CSV, JSON-lines or SQLite file")
    kind = file_kind(path)
    if table is not None and kind != "sqlite":
        raise TableError("?table= only applies to SQLite files")
    if kind == "sqlite":
        with closing(_open(path)) as conn:
            name = table if table is not None else _only_table(conn)
            return read_sqlite_table(conn, name, wanted, f"{path} (table {name})")
    data = path.read_bytes()
    if kind == "jsonl":
        return _read_jsonl(data, wanted, str(path))
    return _read_csv(data, wanted, str(path))


def _open(path: Path) -> sqlite3.Connection:
    try:
        return open_readonly(path)
    except sqlite3.Error as exc:
        raise TableError(f"cannot open the database ({exc})") from None


def table_columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """``(name, declared type)`` of each column of ``table``; empty if there is no such table."""
    rows = conn.execute("SELECT name, type FROM pragma_table_info(?)", (table,)).fetchall()
    return [(str(name), str(kind or "").upper()) for name, kind in rows]


def _only_table(conn: sqlite3.Connection) -> str:
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    fitting = [
        n for n in names if {"sensor_id", "timestamp"} <= {c for c, _ in table_columns(conn, n)}
    ]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        raise TableError(
            f"no table with sensor_id and timestamp columns (tables: {', '.join(names) or 'none'})"
        )
    raise TableError(
        f"several tables have sensor_id and timestamp ({', '.join(fitting)}); "
        "name one as FILE?table=NAME"
    )


def read_sqlite_table(
    conn: sqlite3.Connection, table: str, wanted: Sequence[str], label: str
) -> Columns:
    """The ``wanted`` columns of an SQLite table, in rowid order (insertion order)."""
    chunks = list(sqlite_chunks(conn, table, wanted, label))
    values = {c: concat([chunk.values[c] for chunk in chunks]) for c in chunks[0].values}
    return Columns(label, sum(c.rows for c in chunks), values, chunks[0].names)


def sqlite_chunks(
    conn: sqlite3.Connection,
    table: str,
    wanted: Sequence[str],
    label: str,
    sparse: Mapping[str, str] | None = None,
) -> Iterator[Columns]:
    """The ``wanted`` columns of an SQLite table, a slice of rowids at a time (at least one
    slice, maybe empty), so a caller can decode each before reading the next.

    ``sparse`` maps a column to an SQL condition: it is read only from the rows that meet
    it (one query for all columns sharing the condition), and is empty elsewhere. Labels
    set on a few percent of the rows cost a fraction of a full column that way.
    """
    declared = conn.execute('SELECT name, "notnull" FROM pragma_table_info(?)', (table,)).fetchall()
    names = tuple(str(name) for name, _ in declared)
    if not names:
        raise TableError(f"no table {table!r}")
    required = {str(name) for name, notnull in declared if notnull}
    present = [c for c in wanted if c in names]
    conditions: dict[str, list[str]] = {}
    for column, condition in (sparse or {}).items():
        if column in present:
            conditions.setdefault(condition, []).append(column)
    dense = [c for c in present if c not in (sparse or {})]
    try:
        bounds = conn.execute(f'SELECT min(rowid), max(rowid) FROM "{table}"').fetchone()
    except sqlite3.OperationalError:  # WITHOUT ROWID
        yield read_rows(conn.execute(_select(table, present)), present, names, label)
        return
    if bounds[0] is None:
        yield Columns(label, 0, {c: from_strings([]) for c in present}, names)
        return
    low, high = int(bounds[0]), int(bounds[1])
    # NOT NULL columns need no count of their values; the others are checked for NULLs.
    aggregates = "".join(
        f", {'count(*)' if c in required else f'count({_quoted(c)})'}, "
        f"group_concat({_quoted(c)}, ?)"
        for c in dense
    )
    query = f'SELECT count(*){aggregates} FROM "{table}" WHERE rowid BETWEEN ? AND ?'

    def read_slice(reader: sqlite3.Connection, first: int, last: int) -> Columns:
        arguments = (*([_SEPARATOR] * len(dense)), first, last)
        found = reader.execute(query, arguments).fetchone()
        count = int(found[0])
        values: dict[str, TextColumn | None] = {}
        for index, column in enumerate(dense):
            filled, text = found[1 + 2 * index], found[2 + 2 * index]
            if count == 0:
                values[column] = from_strings([])
            elif filled == count:
                values[column] = split_joined(text, ord(_SEPARATOR), count)
            else:  # group_concat skips NULLs: place the others by rowid
                where = f"{_quoted(column)} IS NOT NULL"
                values.update(_sparse(reader, table, [column], where, first, last, count))
        for condition, columns in conditions.items():
            values.update(_sparse(reader, table, columns, condition, first, last, count))
        filled_in = {
            c: v if v is not None else _column_slowly(reader, table, c, first, last)
            for c, v in values.items()  # None: the separator inside a value
        }
        return Columns(label, count, {c: filled_in[c] for c in present}, names)

    slices = [
        (first, min(high, first + ROWS_PER_QUERY - 1))
        for first in range(low, high + 1, ROWS_PER_QUERY)
    ]
    file = _file_of(conn)
    if file is not None and len(slices) > 1 and reader_threads() > 1:
        yield from _in_parallel(file, slices, read_slice)
        return
    factory = conn.text_factory
    conn.text_factory = bytes  # the joined text stays bytes: no decoding and re-encoding
    try:
        for first, last in slices:
            yield read_slice(conn, first, last)
    finally:
        conn.text_factory = factory


def reader_threads() -> int:
    """Threads reading an SQLite table at once: one per core this process may use (SQLite
    runs a query without holding Python's lock), at most four."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _file_of(conn: sqlite3.Connection) -> Path | None:
    """The file of the connection's main database; None for one in memory."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return Path(file) if file else None
    return None


def _in_parallel(
    file: Path,
    slices: Sequence[tuple[int, int]],
    read_slice: Callable[[sqlite3.Connection, int, int], Columns],
) -> Iterator[Columns]:
    """``read_slice`` over every slice of rowids, by several threads, each with its own
    read-only connection; the slices come back in order."""
    local = threading.local()
    opened: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def work(bounds: tuple[int, int]) -> Columns:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = open_readonly(file)
            conn.text_factory = bytes
            local.conn = conn
            with lock:
                opened.append(conn)
        return read_slice(conn, *bounds)

    try:
        with ThreadPoolExecutor(reader_threads(), thread_name_prefix="score-sqlite") as pool:
            yield from pool.map(work, slices)
    finally:
        for conn in opened:
            conn.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sparse(
    conn: sqlite3.Connection,
    table: str,
    columns: Sequence[str],
    condition: str,
    first: int,
    last: int,
    count: int,
) -> dict[str, TextColumn | None]:
    """``columns`` read from the rows meeting ``condition`` (placed by rowid), empty
    elsewhere; None for a column whose values contain the separator."""
    listed = "".join(f", group_concat(ifnull({_quoted(c)}, ''), ?)" for c in columns)
    query = (
        f'SELECT count(*), group_concat(rowid, ?){listed} FROM "{table}" '
        f"WHERE rowid BETWEEN ? AND ? AND ({condition})"
    )
    separators = [_SEPARATOR] * (len(columns) + 1)
    found = conn.execute(query, (*separators, first, last)).fetchone()
    filled = int(found[0])
    empty = np.zeros(count, dtype=np.int64)
    if filled == 0:
        return {c: TextColumn(np.zeros(0, np.uint8), empty, empty) for c in columns}
    rowids = split_joined(_raw(found[1]), ord(_SEPARATOR), filled)
    assert rowids is not None  # integers never contain the separator
    where = rowids.strings().astype(np.int64)
    if count != last - first + 1:  # rowids with gaps: find each row's position
        every = conn.execute(
            f'SELECT group_concat(rowid, ?) FROM "{table}" WHERE rowid BETWEEN ? AND ?',
            (_SEPARATOR, first, last),
        ).fetchone()[0]
        all_rowids = split_joined(_raw(every), ord(_SEPARATOR), count)
        assert all_rowids is not None
        where = np.searchsorted(all_rowids.strings().astype(np.int64), where)
    else:
        where -= first
    result: dict[str, TextColumn | None] = {}
    for index, column in enumerate(columns):
        values = split_joined(_raw(found[2 + index]), ord(_SEPARATOR), filled)
        if values is None:
            result[column] = None
            continue
        starts, ends = empty.copy(), empty.copy()
        starts[where] = values.starts
        ends[where] = values.ends
        result[column] = TextColumn(values.buffer, starts, ends)
    return result


def _column_slowly(
    conn: sqlite3.Connection, table: str, column: str, first: int, last: int
) -> TextColumn:
    cursor = conn.execute(
        f'SELECT "{column}" FROM "{table}" WHERE rowid BETWEEN ? AND ? ORDER BY rowid',
        (first, last),
    )
    return from_strings([_text(row[0]) for row in cursor])


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _select(table: str, columns: Sequence[str]) -> str:
    listed = ", ".join(f'"{c}"' for c in columns) or "1"
    return f'SELECT {listed} FROM "{table}"'


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_rows(cursor: Any, present: Sequence[str], names: Sequence[str], label: str) -> Columns:
    """Columns from a DB-API cursor, row by row (PostgreSQL, WITHOUT ROWID tables)."""
    gathered: list[list[str | None]] = [[] for _ in present]
    rows = 0
    while True:
        batch = cursor.fetchmany(100_000)
        if not batch:
            break
        rows += len(batch)
        for index, column in enumerate(zip(*batch, strict=True)) if present else ():
            gathered[index].extend(_text(v) for v in column)
    values = {c: from_strings(g) for c, g in zip(present, gathered, strict=True)}
    return Columns(label, rows, values, tuple(names))


def _read_csv(data: bytes, wanted: Sequence[str], label: str) -> Columns:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    end = _without_final_newlines(data)
    header_end = data.find(b"\n", 0, end)
    header_bytes = data[:end] if header_end < 0 else data[:header_end]
    body_start = end if header_end < 0 else header_end + 1
    try:
        header = next(csv.reader([header_bytes.decode("utf-8")]))
    except (UnicodeDecodeError, StopIteration):
        raise TableError("line 1: expected a header of column names") from None
    names = tuple(h.strip() for h in header)
    if not names or names == ("",):
        raise TableError("empty file; expected a header line naming the columns")
    present = [c for c in wanted if c in names]
    if data.find(b'"', body_start, end) >= 0:
        return _read_csv_quoted(data[body_start:end], names, present, label)
    width = len(names)
    # The body and the newline after it, without copying the file's bytes.
    if body_start >= end:
        buffer = np.zeros(0, np.uint8)
    elif end < len(data):
        buffer = np.frombuffer(data, np.uint8, count=end + 1 - body_start, offset=body_start)
    else:
        buffer = np.frombuffer(data[body_start:] + b"\n", np.uint8)
    delimiters = _delimiters(buffer)
    rows = len(delimiters) // width
    line_ends = delimiters[width - 1 :: width] if width else delimiters
    if len(delimiters) % width or not (buffer[line_ends] == ord("\n")).all():
        raise TableError(_ragged(buffer, width))
    ends = delimiters.reshape(rows, width)
    spaced = data.find(b" ", body_start, end) >= 0  # mostly none: then nothing to strip
    values = {}
    for column in present:
        index = names.index(column)
        if index:
            starts = ends[:, index - 1] + 1
        else:
            starts = np.zeros(rows, dtype=np.int64)
            starts[1:] = ends[:-1, -1] + 1
        value = TextColumn(buffer, starts, ends[:, index])
        values[column] = _stripped(value) if spaced else value
    return Columns(label, rows, values, names)


def _without_final_newlines(data: bytes) -> int:
    """The length of ``data`` without the newlines it ends with (``rstrip`` copies)."""
    end = len(data)
    while end and data[end - 1] == ord("\n"):
        step = min(end, 4096)
        tail = data[end - step : end].rstrip(b"\n")
        end -= step - len(tail)
        if tail:
            break
    return end


DELIMITER_BLOCK = 1 << 22  # bytes: the block's temporary masks stay in the cache


def _delimiters(buffer: NDArray[np.uint8]) -> Ints:
    """Positions of every comma and newline, a block at a time."""
    found = []
    for first in range(0, len(buffer), DELIMITER_BLOCK):
        block = buffer[first : first + DELIMITER_BLOCK]
        mask = block == ord(",")
        mask |= block == ord("\n")
        positions = np.flatnonzero(mask)
        positions += first
        found.append(positions)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _stripped(column: TextColumn) -> TextColumn:
    """Spaces around a value are not part of it (``1, 0.5``)."""
    buffer, starts, ends = column.buffer, column.starts.copy(), column.ends.copy()
    if not len(buffer):
        return column
    for _ in range(64):
        leading = (starts < ends) & (buffer[np.minimum(starts, len(buffer) - 1)] == ord(" "))
        trailing = (starts < ends) & (buffer[np.maximum(ends - 1, 0)] == ord(" "))
        if not (leading.any() or trailing.any()):
            break
        starts += leading
        ends -= trailing
    return TextColumn(buffer, starts, ends)


def _ragged(buffer: np.ndarray[Any, np.dtype[np.uint8]], width: int) -> str:
    newlines = np.flatnonzero(buffer == ord("\n"))
    commas = np.flatnonzero(buffer == ord(","))
    per_line = np.bincount(np.searchsorted(newlines, commas), minlength=len(newlines))
    bad = int(np.flatnonzero(per_line != width - 1)[0])
    return f"line {bad + 2}: expected {width} fields like the header (got {per_line[bad] + 1})"


def _read_csv_quoted(
    body: bytes, names: tuple[str, ...], present: list[str], label: str
) -> Columns:
    reader = csv.reader(io.StringIO(body.decode("utf-8", "replace")))
    indexes = [names.index(c) for c in present]
    gathered: list[list[str | None]] = [[] for _ in present]
    rows = 0
    for line, record in enumerate(reader, start=2):
        if len(record) != len(names):
            raise TableError(
                f"line {line}: expected {len(names)} fields like the header (got {len(record)})"
            )
        rows += 1
        for slot, index in enumerate(indexes):
            gathered[slot].append(record[index].strip())
    values = {c: from_strings(g) for c, g in zip(present, gathered, strict=True)}
    return Columns(label, rows, values, names)


def _read_jsonl(data: bytes, wanted: Sequence[str], label: str) -> Columns:
    lines = [line for line in data.splitlines() if line.strip()]
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except (json.JSONDecodeError, UnicodeDecodeError):
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise TableError(f"line {number}: expected a JSON object ({exc})") from None
        raise TableError("expected one JSON object per line") from None
    names: dict[str, None] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise TableError(f"record {number}: expected a JSON object per line")
        if number <= 1000:
            names.update(dict.fromkeys(record))
    present = [c for c in wanted if c in names]
    values = {c: from_strings([_json_text(r.get(c)) for r in records]) for c in present}
    return Columns(label, len(records), values, tuple(names))


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)
