"""Daily partitions of the central PostgreSQL tables (``?partition=daily&retention=30d``).

A partitioned central table is split by the reading's ``timestamp`` into one partition
per UTC day. Three ways to keep those partitions, chosen once per connection:

- ``timescaledb``: where the extension is already created in the database, the table is
  made a hypertable with one-day chunks and retention is ``drop_chunks``;
- ``pg_partman``: where the extension exists or ``CREATE EXTENSION`` succeeds, the table
  is registered with ``create_parent`` (daily, partitions made ahead) and partman's
  maintenance makes future partitions and applies the retention;
- ``declarative``: otherwise the sink creates each day's partition itself before a batch
  that touches it, and drops partitions wholly older than the retention.

PostgreSQL wants every unique key of a partitioned table to hold the partition key, so
the primary key becomes the sink's key plus ``timestamp``. A node row never changes its
timestamp, so a repeat lands on the same key; a different reading under a key already
stored (with another timestamp) is caught by the sink's own existence check, so the sink's
key stays unique across partitions.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import structlog

from ...errors import InputError

if TYPE_CHECKING:
    import psycopg

log = structlog.get_logger("sensorfleet.sync")

Backend = Literal["timescaledb", "pg_partman", "declarative"]
PARTITION_COLUMN = "timestamp"
# Days pg_partman keeps made ahead of today.
PREMAKE_DAYS = 4
# How often a following sink runs maintenance (retention, partitions ahead) per table.
MAINTENANCE_SECONDS = 3600.0
_NAME_LIMIT = 63  # PostgreSQL cuts longer identifiers, which would merge partitions' names


@dataclass(frozen=True)
class Partitioning:
    """What the sink URL asked for: daily partitions, and how long to keep them."""

    daily: bool = False
    retention: timedelta | None = None

    @property
    def retention_interval(self) -> str | None:
        """The retention as a PostgreSQL interval (``'2592000 seconds'``)."""
        if self.retention is None:
            return None
        return f"{int(self.retention.total_seconds())} seconds"


def partition_name(table: str, day: date) -> str:
    """The declarative partition of ``table`` for ``day``: ``<table>_pYYYY_MM_DD`` (the
    name pg_partman gives daily partitions), the table part shortened with a hash when
    the whole would pass PostgreSQL's 63-character limit."""
    suffix = f"_p{day:%Y_%m_%d}"
    if len(table) + len(suffix) > _NAME_LIMIT:
        digest = hashlib.sha1(table.encode()).hexdigest()[:8]
        table = f"{table[: _NAME_LIMIT - len(suffix) - 9]}_{digest}"
    return table + suffix


def days_of(timestamps: Iterable[str]) -> set[date]:
    """The UTC days the readings' ISO-8601 timestamps fall on."""
    days: set[date] = set()
    seen: set[str] = set()
    for text in timestamps:
        # The node writes UTC with a Z, so its hour decides the day; parse each hour once.
        key = text[:13] if text.endswith("Z") else text
        if key in seen:
            continue
        seen.add(key)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        days.add(moment.astimezone(UTC).date())
    return days


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class DailyPartitions:
    """The partitions of the central tables on one connection of one sink."""

    partitioning: Partitioning
    display: str
    backend: Backend | None = None
    partman_schema: str = ""
    partman_major: int = 4
    _days: dict[str, set[date]] = field(default_factory=dict)
    _maintained: dict[str, float] = field(default_factory=dict)

    @property
    def key_extra(self) -> tuple[str, ...]:
        """Columns the table's unique key gains (the partition key)."""
        return (PARTITION_COLUMN,) if self.partitioning.daily else ()

    def reset(self) -> None:
        """Forget what was learned on a connection that is gone."""
        self.backend = None
        self._days.clear()
        self._maintained.clear()

    # -- choosing a backend --------------------------------------------------------

    def detect(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Pick the backend for this connection (inside the caller's transaction)."""
        if not self.partitioning.daily or self.backend is not None:
            return
        # Day boundaries are UTC midnights, also those pg_partman computes in this session.
        conn.execute("SET TIME ZONE 'UTC'")
        if _extension(conn, "timescaledb") is not None:
            self.backend = "timescaledb"
        else:
            found = _extension(conn, "pg_partman") or self._create_partman(conn)
            if found is None:
                self.backend = "declarative"
            else:
                self.backend = "pg_partman"
                self.partman_schema, version = found
                self.partman_major = int(version.split(".")[0])
        log.info("central partitions", sink=self.display, backend=self.backend)

    def _create_partman(self, conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[str, str] | None:
        import psycopg

        row = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman'"
        ).fetchone()
        if row is None:
            return None
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the batch's transaction
                conn.execute("CREATE SCHEMA IF NOT EXISTS partman")
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman")
        except psycopg.Error as exc:
            log.warning(
                "pg_partman not usable",
                sink=self.display,
                error=" ".join(str(exc).split()),
                action="the sink makes each day's partition itself",
            )
            return None
        return _extension(conn, "pg_partman")

    # -- the table -----------------------------------------------------------------

    def table_suffix(self) -> str:
        """What follows the column list of ``CREATE TABLE`` for a new central table."""
        if self.partitioning.daily and self.backend != "timescaledb":
            return f' PARTITION BY RANGE ("{PARTITION_COLUMN}")'
        return ""

    def check(self, conn: psycopg.Connection[tuple[Any, ...]], table: str) -> None:
        """Refuse a table whose partitioning is not what the URL asks for (no silent
        conversion: moving the rows is the operator's decision)."""
        (kind,) = conn.execute(
            "SELECT c.relkind FROM pg_class AS c WHERE c.oid = to_regclass(%s)", (f'"{table}"',)
        ).fetchone() or ("",)
        partitioned = kind == "p" or self._hypertable(conn, table)
        if partitioned and not self.partitioning.daily:
            raise InputError(
                [
                    f"--sink {self.display}: table {table} is partitioned; add "
                    "partition=daily to the URL to write to it"
                ]
            )
        if self.partitioning.daily and not partitioned:
            raise InputError(
                [
                    f"--sink {self.display}: table {table} exists and is not partitioned; "
                    "partition=daily needs a new table: use another table=NAME, or rename "
                    "the table and copy its rows into the partitioned one after the first "
                    "batch"
                ]
            )

    def _hypertable(self, conn: psycopg.Connection[tuple[Any, ...]], table: str) -> bool:
        if _extension(conn, "timescaledb") is None:
            return False
        row = conn.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
            (table,),
        ).fetchone()
        return row is not None

    def register(self, conn: psycopg.Connection[tuple[Any, ...]], table: str) -> None:
        """Hand a new partitioned table to its backend (inside the caller's transaction,
        which also created the table)."""
        if self.backend == "timescaledb":
            conn.execute(
                "SELECT create_hypertable(%s, %s, chunk_time_interval => interval '1 day', "
                "if_not_exists => true)",
                (f'"{table}"', PARTITION_COLUMN),
            )
            if self.partitioning.retention_interval is not None:
                conn.execute(
                    "SELECT add_retention_policy(%s, %s::interval, if_not_exists => true)",
                    (f'"{table}"', self.partitioning.retention_interval),
                )
        elif self.backend == "pg_partman":
            self._register_partman(conn, table)

    def _register_partman(self, conn: psycopg.Connection[tuple[Any, ...]], table: str) -> None:
        from psycopg import sql

        parent = self._qualified(conn, table)
        schema = sql.Identifier(self.partman_schema)
        known = conn.execute(
            sql.SQL("SELECT 1 FROM {}.part_config WHERE parent_table = %s").format(schema),
            (parent,),
        ).fetchone()
        if known is None:
            # partman 4 names declarative partitioning 'native' and a day 'daily'; 5 'range'.
            kind, interval = ("native", "daily") if self.partman_major < 5 else ("range", "1 day")
            conn.execute(
                sql.SQL(
                    "SELECT {}.create_parent(p_parent_table => %s, p_control => %s, "
                    "p_type => %s, p_interval => %s, p_premake => %s)"
                ).format(schema),
                (parent, PARTITION_COLUMN, kind, interval, PREMAKE_DAYS),
            )
        # Keep making days ahead while no new rows come, and drop whole partitions only.
        conn.execute(
            sql.SQL(
                "UPDATE {}.part_config SET infinite_time_partitions = true, retention = %s, "
                "retention_keep_table = false, retention_keep_index = false "
                "WHERE parent_table = %s"
            ).format(schema),
            (self.partitioning.retention_interval, parent),
        )

    @staticmethod
    def _qualified(conn: psycopg.Connection[tuple[Any, ...]], table: str) -> str:
        row = conn.execute(
            "SELECT n.nspname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s)",
            (f'"{table}"',),
        ).fetchone()
        assert row is not None, table
        return f"{row[0]}.{table}"

    # -- each batch ------------------------------------------------------------------

    def ensure(
        self, conn: psycopg.Connection[tuple[Any, ...]], table: str, days: set[date]
    ) -> None:
        """Make the partitions of ``days`` (those inside the retention) exist, in a short
        transaction of their own, before the batch's transaction writes to them."""
        if not self.partitioning.daily or self.backend == "timescaledb":
            return
        from psycopg import sql

        known = self._days.setdefault(table, set())
        wanted = days - known
        if not wanted:
            return
        with conn.transaction():
            # One collector at a time makes a table's partitions; the next finds them made.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"partitions {table}",))
            first = self._first_kept_day(conn)
            fresh = sorted(day for day in wanted if first is None or day >= first)
            if self.backend == "pg_partman":
                conn.execute(
                    sql.SQL("SELECT {}.create_partition_time(%s, %s::timestamptz[])").format(
                        sql.Identifier(self.partman_schema)
                    ),
                    (self._qualified(conn, table), [_midnight(day) for day in fresh]),
                )
            else:
                for day in fresh:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {part} PARTITION OF {table} "
                            "FOR VALUES FROM ({low}) TO ({high})"
                        ).format(
                            part=sql.Identifier(partition_name(table, day)),
                            table=sql.Identifier(table),
                            low=sql.Literal(_midnight(day)),
                            high=sql.Literal(_midnight(day + timedelta(days=1))),
                        )
                    )
        known.update(wanted)

    def _first_kept_day(self, conn: psycopg.Connection[tuple[Any, ...]]) -> date | None:
        interval = self.partitioning.retention_interval
        if interval is None:
            return None
        row = conn.execute(
            "SELECT date_trunc('day', now() - %s::interval)::date", (interval,)
        ).fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    def insert_filter(self) -> tuple[str, tuple[Any, ...]]:
        """A condition on the staged rows (alias ``s``) that keeps rows out of days the
        retention already dropped, with its parameters; ``TRUE`` without a retention."""
        interval = self.partitioning.retention_interval
        if interval is None:
            return "TRUE", ()
        return f"s.\"{PARTITION_COLUMN}\" >= date_trunc('day', now() - %s::interval)", (interval,)

    def note_expired(self, cur: psycopg.Cursor[tuple[Any, ...]], table: str, staging: str) -> None:
        """Log how many staged rows the retention kept out (acknowledged, not stored)."""
        keep, params = self.insert_filter()
        if not params:
            return
        from psycopg import sql

        query = sql.SQL(f"SELECT count(*) FROM {{staging}} AS s WHERE NOT ({keep})")
        row = cur.execute(query.format(staging=sql.Identifier(staging)), params).fetchone()
        if row and row[0]:
            log.info(
                "rows past retention",
                sink=self.display,
                table=table,
                rows=row[0],
                action="acknowledged and not stored: older than the first day kept",
            )

    def maintain(
        self, conn: psycopg.Connection[tuple[Any, ...]], table: str, force: bool = False
    ) -> None:
        """Apply the retention and make days ahead: when a table is first used on a
        connection, then at most every ``MAINTENANCE_SECONDS``."""
        if not self.partitioning.daily:
            return
        now = time.monotonic()
        if not force and now - self._maintained.get(table, -MAINTENANCE_SECONDS) < (
            MAINTENANCE_SECONDS
        ):
            return
        self._maintained[table] = now
        from psycopg import sql

        with conn.transaction():
            if self.backend == "pg_partman":
                conn.execute(
                    sql.SQL("SELECT {}.run_maintenance(%s, p_jobmon => false)").format(
                        sql.Identifier(self.partman_schema)
                    ),
                    (self._qualified(conn, table),),
                )
            elif self.backend == "declarative" and self.partitioning.retention is not None:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"partitions {table}",))
                for (name,) in conn.execute(
                    _EXPIRED, (f'"{table}"', self.partitioning.retention_interval)
                ).fetchall():
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    log.info("partition dropped", sink=self.display, table=table, partition=name)
            # timescaledb applies its own retention policy in the background.
        self._days.pop(table, None)  # dropped days are made again only if rows come


# Partitions of a table whose upper bound is at or before the retention cutoff.
_EXPIRED = """
SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(%s) AND c.relispartition
AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz
    <= now() - %s::interval
ORDER BY c.relname
"""


def _extension(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> tuple[str, str] | None:
    """The schema and version of an extension created in this database, or None."""
    row = conn.execute(
        "SELECT n.nspname, e.extversion FROM pg_extension AS e "
        "JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = %s",
        (name,),
    ).fetchone()
    return (str(row[0]), str(row[1])) if row is not None else None
