"""Summarise readings in SQL: every row is counted by the database, never loaded into Python.

The result is one small table of cells, one per (origin database, sensor,
identity, anomaly type), with row, synced and episode counts. Every figure
in a report is a sum over these cells, so a database of millions of rows
becomes a few hundred Python objects, and memory stays flat however large
the input (SQLite spills its own sorts to temporary files).

Counts are read in slices (rowid ranges, or key ranges of a central store)
so a long scan can report progress and each GROUP BY sort stays small.
Episodes (runs of consecutive flagged readings of one type, per sensor) are
counted with window functions over the flagged rows only: a new episode
starts where the type changes or where the time since the previous flagged
reading exceeds one and a half reading intervals (the interval being the
smallest gap seen between that sensor's flagged readings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .sources import database_errors, open_source
from .table import ReportSource

CHUNK_ROWS = 25_000
CHUNK_ROWS_POSTGRES = 250_000  # a server aggregates by hashing: no sort to keep small
_EPISODE_SHARE = 0.2  # share of a source's progress bar given to the episode pass

ProgressCallback = Callable[[str, float], None]


@dataclass(frozen=True, order=True)
class IdentityFields:
    """The identity fields that shape a sensor's behaviour."""

    firmware_version: str
    model: str
    manufacturer: str
    location: str


@dataclass(frozen=True, order=True)
class CellKey:
    """One group of readings: where from, which sensor, as which identity, which anomaly."""

    origin: str  # the node database id the rows were written to (or the file path)
    sensor_id: str
    identity: IdentityFields
    flagged: bool
    anomaly_type: str | None  # None for normal readings


@dataclass
class Cell:
    """Counts for one ``CellKey``."""

    rows: int = 0
    synced: int = 0
    episodes: int = 0
    first: str = ""
    last: str = ""

    def add(self, rows: int, synced: int, first: str, last: str) -> None:
        self.rows += rows
        self.synced += synced
        self.first = min(self.first, first) if self.first else first
        self.last = max(self.last, last)


@dataclass
class SourceSummary:
    """What one source contributed."""

    source: ReportSource
    cells: dict[CellKey, Cell] = field(default_factory=dict)
    duplicates: int = 0  # rows left out because a node file given holds them too

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.cells.values())

    @property
    def synced(self) -> int:
        return sum(c.synced for c in self.cells.values())

    def origins(self) -> set[str]:
        return {key.origin for key in self.cells}


def _text(value: object) -> str:
    return "(none)" if value is None else str(value)


def _origin(source: ReportSource, column: object) -> str:
    """Which node database rows came from: a central row says; a node file's is its own id."""
    if source.kind == "central":
        return _text(column)
    return source.database_id or source.label


def _count_sql(source: ReportSource) -> str:
    # Plain columns in GROUP BY (no expressions) keep SQLite's sort cheap;
    # the flag and the origin are derived from the few result rows in Python.
    origin = "database_id" if source.kind == "central" else "NULL"
    synced = "SUM(CASE WHEN synced = 1 THEN 1 ELSE 0 END)" if source.has_synced else "COUNT(*)"
    text = source.dialect.text_time
    return f"""
        SELECT {origin}, sensor_id, firmware_version, model, manufacturer, location,
               anomaly_flag, anomaly_type,
               COUNT(*), {synced}, {text('MIN("timestamp")')}, {text('MAX("timestamp")')}
        FROM "{source.table}"
        WHERE {{where}}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """


def _episode_sql(source: ReportSource) -> str:
    dialect = source.dialect
    return f"""
        WITH flagged AS (
            SELECT {"database_id" if source.kind == "central" else "NULL"} AS origin, sensor_id,
                   firmware_version, model, manufacturer, location, anomaly_type,
                   {dialect.epoch} AS t
            FROM "{source.table}"
            WHERE anomaly_flag = 1 AND {{where}}
        ), gaps AS (
            SELECT *, t - LAG(t) OVER w AS gap, LAG(anomaly_type) OVER w AS previous
            FROM flagged
            WINDOW w AS (PARTITION BY origin, sensor_id ORDER BY t)
        ), steps AS (
            SELECT *, MIN(CASE WHEN gap > 0 THEN gap END)
                      OVER (PARTITION BY origin, sensor_id) AS step
            FROM gaps
        )
        SELECT origin, sensor_id, firmware_version, model, manufacturer, location,
               anomaly_type, COUNT(*)
        FROM steps
        WHERE gap IS NULL OR previous {dialect.is_not} anomaly_type OR gap > 1.5 * step
        GROUP BY origin, sensor_id, firmware_version, model, manufacturer, location,
                 anomaly_type
    """


def _key(row: tuple[object, ...], origin: str, flagged: bool, kind: object) -> CellKey:
    identity = IdentityFields(_text(row[2]), _text(row[3]), _text(row[4]), _text(row[5]))
    return CellKey(
        origin=origin,
        sensor_id=_text(row[1]),
        identity=identity,
        flagged=flagged,
        anomaly_type=None if not flagged else _text(kind),
    )


@dataclass(frozen=True)
class _Slice:
    """One bounded piece of a table: a WHERE clause, its parameters, about how many rows."""

    where: str
    params: tuple[object, ...]
    size: int


def _ranges(low: int, high: int, step: int) -> list[tuple[int, int]]:
    return [(start, min(high, start + step - 1)) for start in range(low, high + 1, step)]


def _plan(conn: Any, source: ReportSource, step: int) -> tuple[list[_Slice], _Slice]:
    """Slices that cover the table now, and the condition for "rows that existed then"."""
    table = f'"{source.table}"'
    sql = source.dialect.sql
    everything = _Slice("1 = 1", (), 0)
    if source.slicing == "rowid":
        low, high = conn.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {table}").fetchone()
        if low is None:
            return [], everything
        slices = [
            _Slice("rowid BETWEEN ? AND ?", r, r[1] - r[0] + 1) for r in _ranges(low, high, step)
        ]
        return slices, _Slice("rowid <= ?", (high,), 0)
    if source.slicing == "key":
        # A central store keyed on (database_id, source_row_id): walk the
        # origins by index seeks, then id ranges within each.
        slices = []
        origin = conn.execute(f"SELECT MIN(database_id) FROM {table}").fetchone()[0]
        while origin is not None:
            low, high = conn.execute(
                sql(f"SELECT MIN(source_row_id), MAX(source_row_id) FROM {table} "
                    "WHERE database_id = ?"),
                (origin,),
            ).fetchone()  # fmt: skip
            slices.extend(
                _Slice("database_id = ? AND source_row_id BETWEEN ? AND ?", (origin, *r),
                       r[1] - r[0] + 1)
                for r in _ranges(int(low), int(high), step)
            )  # fmt: skip
            origin = conn.execute(
                sql(f"SELECT MIN(database_id) FROM {table} WHERE database_id > ?"), (origin,)
            ).fetchone()[0]
        return slices, everything
    return [_Slice("1 = 1", (), 1)], everything


def summarise_source(
    source: ReportSource,
    progress: ProgressCallback | None = None,
    chunk_rows: int | None = None,
) -> SourceSummary:
    """Count one source's readings by cell; raise the driver's error if it cannot be read."""
    summary = SourceSummary(source)
    cells = summary.cells
    sql = source.dialect.sql
    if chunk_rows is None:
        chunk_rows = CHUNK_ROWS if source.url is None else CHUNK_ROWS_POSTGRES
    with open_source(source) as conn:
        slices, existing = _plan(conn, source, chunk_rows)
        count_sql = _count_sql(source)
        total = sum(piece.size for piece in slices) or 1
        done = 0
        for piece in slices:
            for row in conn.execute(sql(count_sql.format(where=piece.where)), piece.params):
                flagged = row[6] == 1
                key = _key(row, _origin(source, row[0]), flagged, row[7] if flagged else None)
                cells.setdefault(key, Cell()).add(int(row[8]), int(row[9] or 0), row[10], row[11])
            done += piece.size
            if progress is not None:
                progress("counting", (1 - _EPISODE_SHARE) * done / total)
        if not slices:
            return summary
        if progress is not None:
            progress("counting episodes", 1 - _EPISODE_SHARE)
        episode_sql = sql(_episode_sql(source).format(where=existing.where))
        for row in conn.execute(episode_sql, existing.params):
            key = _key(row, _origin(source, row[0]), True, row[6])
            # A cell missing here would mean rows appeared between the two passes.
            cell = cells.get(key)
            if cell is not None:
                cell.episodes += int(row[7])
        if progress is not None:
            progress("done", 1.0)
    return summary


def drop_duplicate_origins(summaries: Iterable[SourceSummary]) -> list[str]:
    """Remove central-store rows whose node file is also a source; return notes.

    The node file is the fuller record (it also holds unsynced rows), so its
    copy is kept and the central copy is left out rather than counted twice.
    """
    summaries = list(summaries)
    node_origins = {o for s in summaries if s.source.kind == "node" for o in s.origins()}
    notes = []
    for summary in summaries:
        if summary.source.kind != "central":
            continue
        duplicate = [k for k in summary.cells if k.origin in node_origins]
        if duplicate:
            rows = sum(summary.cells[k].rows for k in duplicate)
            for key in duplicate:
                del summary.cells[key]
            summary.duplicates += rows
            notes.append(
                f"{summary.source.label}: {rows:,} rows also present in node files given "
                "on the command line were counted once, from the node files"
            )
    return notes


def read_sources(
    sources: list[ReportSource],
    progress: Callable[[int, ReportSource, str, float], None] | None = None,
) -> tuple[list[SourceSummary], list[str]]:
    """Summarise every source; a source that fails mid-read becomes a problem line."""
    summaries: list[SourceSummary] = []
    problems: list[str] = []
    for index, source in enumerate(sources):
        callback: ProgressCallback | None = None
        if progress is not None:

            def callback(
                stage: str, fraction: float, i: int = index, s: ReportSource = source
            ) -> None:
                progress(i, s, stage, fraction)

        try:
            summaries.append(summarise_source(source, callback))
        except database_errors(source) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problems.append(f"{source.label}: cannot read the database ({reason})")
    return summaries, problems
