"""Time series of chosen sensors for the plots, bucketed in SQL.

A week at ten readings a second is six million rows for one sensor; a plot
needs a thousand points. So SQLite averages readings into time buckets and
keeps each bucket's minimum and maximum (a one-reading spike survives as an
extreme), and anomaly episodes come back as (start, end, type) runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ..node.layout import CLASSIC
from .aggregate import SourceSummary
from .dialect import SQLITE
from .model import ObservedEpisode, SensorSeries
from .sources import database_errors, open_source
from .table import ReportSource

DEFAULT_SENSORS = 4
BUCKETS = 1200
MEASUREMENTS: tuple[str, ...] = tuple(column.name for column in CLASSIC.channels)


@dataclass(frozen=True)
class Pick:
    """A sensor to plot and where its rows are."""

    sensor_id: str
    summary: SourceSummary
    origin: str
    identity: str
    last: str


def missing_sensors(sources: Sequence[ReportSource], wanted: Sequence[str]) -> list[str]:
    """The names in ``wanted`` that no source has a reading of (one indexed probe each)."""
    remaining = list(dict.fromkeys(wanted))
    for source in sources:
        if not remaining:
            break
        try:
            with open_source(source) as conn:
                sql = source.dialect.sql(
                    f"SELECT 1 FROM {source.table} WHERE sensor_id = ? LIMIT 1"
                )
                remaining = [name for name in remaining if not _fetch_one(conn, sql, (name,))]
        except database_errors(source):
            continue  # reported by the full read
    return remaining


def _fetch_one(conn: Any, sql: str, params: tuple[object, ...]) -> object:
    cursor = conn.execute(sql, params)
    return cursor.fetchone()


def choose_sensors(
    summaries: list[SourceSummary], wanted: list[str]
) -> tuple[list[Pick], list[str]]:
    """The sensors named in ``wanted``, or a few with different identities by default.

    A sensor found in several sources is read from the one holding most of its rows.
    """
    best: dict[str, tuple[int, Pick]] = {}
    rows: dict[tuple[int, str, str], int] = defaultdict(int)
    lasts: dict[tuple[int, str, str], str] = {}
    identities: dict[tuple[int, str, str], str] = {}
    for index, summary in enumerate(summaries):
        for key, cell in summary.cells.items():
            ref = (index, key.origin, key.sensor_id)
            rows[ref] += cell.rows
            lasts[ref] = max(lasts.get(ref, ""), cell.last)
            i = key.identity
            identities[ref] = (
                f"firmware {i.firmware_version} · {i.model} · {i.manufacturer} · {i.location}"
            )
    for (index, origin, sensor), count in rows.items():
        held = best.get(sensor)
        if held is None or count > held[0]:
            ref = (index, origin, sensor)
            pick = Pick(sensor, summaries[index], origin, identities[ref], lasts[ref])
            best[sensor] = (count, pick)
    if wanted:
        picks, problems = [], []
        for sensor in dict.fromkeys(wanted):
            if sensor in best:
                picks.append(best[sensor][1])
            else:
                problems.append(f"--sensor {sensor}: no readings of this sensor in the sources")
        return picks, problems
    chosen: list[Pick] = []
    seen: set[str] = set()
    for sensor in sorted(best, key=lambda s: (best[s][1].identity, s)):
        pick = best[sensor][1]
        if pick.identity not in seen:
            seen.add(pick.identity)
            chosen.append(pick)
    return chosen[:DEFAULT_SENSORS], []


def _bound(last: str, window_seconds: float) -> tuple[str, float]:
    """The window's first instant, formatted like the stored timestamps, and as epoch seconds."""
    end = datetime.fromisoformat(last.replace("Z", "+00:00"))
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    start = end - timedelta(seconds=window_seconds)
    separator = "T" if "T" in last else " "
    text = start.astimezone(UTC).strftime(f"%Y-%m-%d{separator}%H:%M:%S.%f")
    return text + ("Z" if last.endswith("Z") else ""), start.timestamp()


def read_series(pick: Pick, window_seconds: float | None) -> SensorSeries:
    """Bucketed readings and anomaly episodes of one sensor over the window before its last row."""
    source = pick.summary.source
    dialect = source.dialect
    epoch = dialect.epoch
    where = "sensor_id = ?"
    params: list[object] = [pick.sensor_id]
    if source.kind == "central":
        where += " AND database_id = ?"
        params.append(pick.origin)
    if window_seconds is not None:
        text, instant = _bound(pick.last, window_seconds)
        where += ' AND "timestamp" >= ?'
        # SQLite compares the stored text; PostgreSQL a real timestamp.
        params.append(text if dialect is SQLITE else datetime.fromtimestamp(instant, UTC))
    table = f'"{source.table}"'
    sql = dialect.sql
    with open_source(source) as conn:
        low, high, count = conn.execute(
            sql(f"SELECT MIN({epoch}), MAX({epoch}), COUNT(*) FROM {table} WHERE {where}"), params
        ).fetchone()
        if not count:
            return _empty(pick)
        low, high = float(low), float(high)
        width = max((high - low) / BUCKETS, 1e-6)
        columns = ", ".join(f"AVG({m}), MIN({m}), MAX({m})" for m in MEASUREMENTS)
        bucket = dialect.floor(f"({epoch} - ?) / ?")
        buckets = conn.execute(
            sql(f"""SELECT {bucket} AS bucket, MIN({epoch}), {columns}
                    FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"""),
            [low, width, *params],
        ).fetchall()
        runs = conn.execute(
            sql(f"""WITH w AS (
                    SELECT anomaly_flag, anomaly_type, {epoch} AS t
                    FROM {table} WHERE {where}
                ), marked AS (
                    SELECT *, CASE WHEN anomaly_flag = 1 AND (
                        LAG(anomaly_flag) OVER o {dialect.is_not} 1
                        OR LAG(anomaly_type) OVER o {dialect.is_not} anomaly_type)
                        THEN 1 ELSE 0 END AS s
                    FROM w WINDOW o AS (ORDER BY t)
                ), numbered AS (
                    SELECT *, SUM(s) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING) AS run
                    FROM marked
                )
                SELECT MIN(anomaly_type), MIN(t), MAX(t) FROM numbered
                WHERE anomaly_flag = 1 GROUP BY run ORDER BY run"""),
            params,
        ).fetchall()
    data = np.array(
        [[np.nan if v is None else float(v) for v in row[1:]] for row in buckets], dtype=np.float64
    )
    step = (high - low) / max(1, count - 1)
    episodes = [ObservedEpisode(float(a), float(b) + step, str(kind)) for kind, a, b in runs]
    return SensorSeries(
        sensor_id=pick.sensor_id,
        source=source.label,
        identity=pick.identity,
        times=data[:, 0],
        mean={m: data[:, 1 + 3 * i] for i, m in enumerate(MEASUREMENTS)},
        low={m: data[:, 2 + 3 * i] for i, m in enumerate(MEASUREMENTS)},
        high={m: data[:, 3 + 3 * i] for i, m in enumerate(MEASUREMENTS)},
        episodes=episodes,
        rows=int(count),
    )


def _empty(pick: Pick) -> SensorSeries:
    none = np.zeros(0, dtype=np.float64)
    return SensorSeries(
        pick.sensor_id,
        pick.summary.source.label,
        pick.identity,
        none,
        {m: none for m in MEASUREMENTS},
        {m: none for m in MEASUREMENTS},
        {m: none for m in MEASUREMENTS},
        [],
        0,
    )
