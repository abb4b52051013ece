"""``postgresql://user:password@host:port/dbname``: a central PostgreSQL table (psycopg 3).

Each batch is one transaction: ``COPY`` into a session-local staging table,
then ``INSERT … SELECT … ON CONFLICT (database_id, source_row_id) DO
NOTHING``; the commit is the acknowledgement. COPY keeps the wire cost of a
batch to one round trip of row data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...node.layout import CLASSIC
from ...node.readings import COLUMNS
from .base import CENTRAL_COLUMNS, CONFLICTS_SUFFIX, Batch, SinkError, log_conflicts

if TYPE_CHECKING:
    import psycopg

DEFAULT_TABLE = "sensor_readings"
_STAGING = "sensorfleet_incoming"

# The central copy of the node's reading columns, keyed by where each row came from.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {{table}} (
    database_id text NOT NULL,
    source_row_id bigint NOT NULL,
{CLASSIC.postgres_columns_sql()},
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (database_id, source_row_id)
)
"""
# A second, different reading under a key the table holds is kept here, never dropped.
# Made from the table itself, so a table written by an earlier version gains it as it is.
_CONFLICTS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {conflicts} (LIKE {table} INCLUDING DEFAULTS)",
    "ALTER TABLE {conflicts} ADD COLUMN IF NOT EXISTS detected_at timestamptz NOT NULL "
    "DEFAULT now()",
    "CREATE INDEX IF NOT EXISTS {index} ON {conflicts} (database_id, source_row_id)",
)
# Rows of the batch whose key the table holds with another reading, not kept beside it yet.
_KEEP_CONFLICTS = """
INSERT INTO {conflicts} ({columns}) SELECT {staged} FROM {staging} AS s
JOIN {table} AS c ON c.database_id = s.database_id AND c.source_row_id = s.source_row_id
WHERE ({stored}) IS DISTINCT FROM ({incoming}) AND NOT EXISTS (
    SELECT 1 FROM {conflicts} AS k
    WHERE k.database_id = s.database_id AND k.source_row_id = s.source_row_id
    AND ({kept}) IS NOT DISTINCT FROM ({incoming}))
RETURNING source_row_id
"""


class PostgresSink:
    """Rows upserted into one PostgreSQL table."""

    def __init__(
        self, conninfo: str, display: str, table: str = DEFAULT_TABLE, timeout: float = 10.0
    ) -> None:
        self.conninfo = conninfo
        self.display = display
        self.table = table
        self.timeout = timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.conflicts = 0  # readings kept beside the table because their key was taken

    @property
    def name(self) -> str:
        return self.display

    def open(self) -> None:
        import psycopg
        from psycopg import sql

        table = sql.Identifier(self.table)
        try:
            conn = psycopg.connect(self.conninfo, connect_timeout=max(1, round(self.timeout)))
        except psycopg.Error as exc:
            raise SinkError(f"{self.name}: connect: {_one_line(exc)}") from None
        try:
            with conn.transaction():
                conn.execute(sql.SQL(_SCHEMA).format(table=table))
                for statement in _CONFLICTS_SCHEMA:
                    conn.execute(
                        sql.SQL(statement).format(
                            conflicts=sql.Identifier(self.table + CONFLICTS_SUFFIX),
                            table=table,
                            index=sql.Identifier(f"idx_{self.table}{CONFLICTS_SUFFIX}_key"),
                        )
                    )
                conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE IF NOT EXISTS {staging} "
                        "(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    ).format(staging=sql.Identifier(_STAGING), table=table)
                )
        except psycopg.Error as exc:
            conn.close()
            raise SinkError(f"{self.name}: create table {self.table}: {_one_line(exc)}") from None
        self._conn = conn

    def write(self, batch: Batch) -> int:
        import psycopg
        from psycopg import sql

        if self._conn is None or self._conn.closed:
            self.open()
        conn = self._conn
        assert conn is not None
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in CENTRAL_COLUMNS)
        staging = sql.Identifier(_STAGING)
        try:
            with conn.transaction(), conn.cursor() as cur:
                copy_sql = sql.SQL("COPY {staging} ({columns}) FROM STDIN").format(
                    staging=staging, columns=columns
                )
                with cur.copy(copy_sql) as copy:
                    for row in batch.central_rows():
                        copy.write_row(row)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
                        "ON CONFLICT (database_id, source_row_id) DO NOTHING"
                    ).format(table=sql.Identifier(self.table), columns=columns, staging=staging)
                )
                stored = max(cur.rowcount, 0)
                if stored < len(batch):  # some keys were there: the same readings?
                    cur.execute(self._keep_conflicts())
                    found = sorted(int(str(row[0])) for row in cur.fetchall())
                    if found:
                        self.conflicts += len(found)
                        log_conflicts(self.name, self.table, batch.database_id, found)
                return stored
        except psycopg.Error as exc:
            self.close()  # a fresh connection next time; the transaction was rolled back
            raise SinkError(f"{self.name}: write batch: {_one_line(exc)}") from None

    def _keep_conflicts(self) -> psycopg.sql.Composed:
        from psycopg import sql

        def of(alias: str, names: tuple[str, ...]) -> sql.Composed:
            return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)

        return sql.SQL(_KEEP_CONFLICTS).format(
            conflicts=sql.Identifier(self.table + CONFLICTS_SUFFIX),
            table=sql.Identifier(self.table),
            staging=sql.Identifier(_STAGING),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in CENTRAL_COLUMNS),
            staged=of("s", CENTRAL_COLUMNS),
            stored=of("c", COLUMNS),
            incoming=of("s", COLUMNS),
            kept=of("k", COLUMNS),
        )

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
