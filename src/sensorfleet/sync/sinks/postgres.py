"""``postgresql://user:password@host:port/dbname``: a central PostgreSQL table (psycopg 3).

Each batch is one transaction: ``COPY`` into a session-local staging table,
then ``INSERT … SELECT … ON CONFLICT (database_id, source_row_id) DO
NOTHING``; the commit is the acknowledgement. COPY keeps the wire cost of a
batch to one round trip of row data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..._redaction import scrub
from ...node.layout import CLASSIC
from .base import CENTRAL_COLUMNS, Batch, SinkError

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


class PostgresSink:
    """Rows upserted into one PostgreSQL table."""

    def __init__(
        self,
        conninfo: str,
        display: str,
        table: str = DEFAULT_TABLE,
        timeout: float = 10.0,
        secrets: Sequence[str] = (),
    ) -> None:
        self.conninfo = conninfo
        self.display = display
        self.secrets = secrets  # hidden from the driver's messages
        self.table = table
        self.timeout = timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def name(self) -> str:
        return self.display

    def _one_line(self, exc: BaseException) -> str:
        text = " ".join(scrub(str(exc), self.secrets).split())
        return text or type(exc).__name__

    def open(self) -> None:
        import psycopg
        from psycopg import sql

        table = sql.Identifier(self.table)
        try:
            conn = psycopg.connect(self.conninfo, connect_timeout=max(1, round(self.timeout)))
        except psycopg.Error as exc:
            raise SinkError(f"{self.name}: connect: {self._one_line(exc)}") from None
        try:
            with conn.transaction():
                conn.execute(sql.SQL(_SCHEMA).format(table=table))
                conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE IF NOT EXISTS {staging} "
                        "(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    ).format(staging=sql.Identifier(_STAGING), table=table)
                )
        except psycopg.Error as exc:
            conn.close()
            problem = self._one_line(exc)
            raise SinkError(f"{self.name}: create table {self.table}: {problem}") from None
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
                return max(cur.rowcount, 0)
        except psycopg.Error as exc:
            self.close()  # a fresh connection next time; the transaction was rolled back
            raise SinkError(f"{self.name}: write batch: {self._one_line(exc)}") from None

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
