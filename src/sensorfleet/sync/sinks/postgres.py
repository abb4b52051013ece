"""``postgresql://user:password@host:port/dbname``: a central PostgreSQL table (psycopg 3).

Each batch is one transaction: ``COPY`` into a session-local staging table,
then ``INSERT … SELECT … ON CONFLICT (database_id, source_row_id) DO
NOTHING``; the commit is the acknowledgement. COPY keeps the wire cost of a
batch to one round trip of row data. With ``?partition=daily`` the tables are split by
day (``postgres_partitions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..._redaction import scrub
from ...node.layout import CLASSIC, TableLayout
from .base import CONFLICTS_SUFFIX, KEY_COLUMNS, Batch, SinkError, log_conflicts
from .postgres_partitions import DailyPartitions, Partitioning, days_of

if TYPE_CHECKING:
    import psycopg

DEFAULT_TABLE = "sensor_readings"
_STAGING = "sensorfleet_incoming"


def _schema(layout: TableLayout, partitions: DailyPartitions) -> str:
    """The central copy of a node table's reading columns, keyed by where each row came
    from (``{table}`` left for psycopg to quote); a partitioned table's key also holds
    the partition key, as PostgreSQL requires."""
    key = ", ".join(f'"{name}"' for name in (*KEY_COLUMNS, *partitions.key_extra))
    return f"""
CREATE TABLE IF NOT EXISTS {{table}} (
    database_id text NOT NULL,
    source_row_id bigint NOT NULL,
{layout.postgres_columns_sql()},
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ({key})
){partitions.table_suffix()}
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
        self,
        conninfo: str,
        display: str,
        table: str = DEFAULT_TABLE,
        timeout: float = 10.0,
        secrets: Sequence[str] = (),
        partitioning: Partitioning | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.display = display
        self.secrets = secrets  # hidden from the driver's messages
        self.table = table
        self.timeout = timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._ready: set[TableLayout] = set()  # tables and staging made on this connection
        self.conflicts = 0  # readings kept beside a table because their key was taken
        self.partitions = DailyPartitions(partitioning or Partitioning(), display)

    @property
    def name(self) -> str:
        return self.display

    def _table(self, layout: TableLayout) -> str:
        """``table`` for classic readings (the URL may name it); an equipment model's rows
        go to the node's own ``<type>_readings``."""
        return self.table if layout.table == CLASSIC.table else layout.table

    @staticmethod
    def _staging(layout: TableLayout) -> str:
        return _STAGING if layout.table == CLASSIC.table else f"{_STAGING}_{layout.type_name}"

    def _prepare(self, conn: psycopg.Connection[tuple[object, ...]], layout: TableLayout) -> None:
        """Create the central table of ``layout`` (labels nullable, ``relaxed``) and its
        session staging table, once per connection; a column the table lacks (a new channel,
        labels a first node hid) is added."""
        from psycopg import sql

        if layout in self._ready:
            return
        table, staging = sql.Identifier(self._table(layout)), sql.Identifier(self._staging(layout))
        central = layout.relaxed()
        self._create(conn, central)
        conflicts = sql.Identifier(self._table(layout) + CONFLICTS_SUFFIX)
        index = sql.Identifier(f"idx_{self._table(layout)}{CONFLICTS_SUFFIX}_key")
        for statement in _CONFLICTS_SCHEMA:
            conn.execute(sql.SQL(statement).format(conflicts=conflicts, table=table, index=index))
        # A channel a node's table gained since, or labels that another node hid: added.
        add = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "
        for column in () if layout is CLASSIC else central.columns:
            definition = sql.SQL(column.postgres_sql())
            for name in (table, conflicts):
                conn.execute(sql.SQL(add).format(table=name) + definition)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{staging}").format(staging=staging))
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {staging} (LIKE {table} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            ).format(staging=staging, table=table)
        )
        self._ready.add(layout)

    def _create(self, conn: psycopg.Connection[tuple[object, ...]], layout: TableLayout) -> None:
        """Create the central table of ``layout``, or check that an existing one is
        partitioned as the URL asks."""
        from psycopg import sql

        name, partitions = self._table(layout), self.partitions
        # Collectors starting together would race on CREATE TABLE IF NOT EXISTS (PostgreSQL
        # checks the name before it inserts the type: a duplicate-key error for the loser).
        # One at a time per table, until the creating transaction commits.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"create {name}",))
        partitions.detect(conn)
        existed = conn.execute("SELECT to_regclass(%s)", (f'"{name}"',)).fetchone() != (None,)
        conn.execute(sql.SQL(_schema(layout, partitions)).format(table=sql.Identifier(name)))
        if existed:
            partitions.check(conn, name)
        if partitions.partitioning.daily:
            partitions.register(conn, name)
            partitions.maintain(conn, name, force=True)

    def _one_line(self, exc: BaseException) -> str:
        text = " ".join(scrub(str(exc), self.secrets).split())
        return text or type(exc).__name__

    def open(self) -> None:
        import psycopg

        try:
            conn = psycopg.connect(self.conninfo, connect_timeout=max(1, round(self.timeout)))
        except psycopg.Error as exc:
            raise SinkError(f"{self.name}: connect: {self._one_line(exc)}") from None
        self._ready = set()
        self.partitions.reset()
        try:
            with conn.transaction():
                self._prepare(conn, CLASSIC)
        except psycopg.Error as exc:
            self._ready = set()
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
        layout = batch.layout
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in batch.columns)
        staging = sql.Identifier(self._staging(layout))
        try:
            if layout not in self._ready:
                with conn.transaction():
                    self._prepare(conn, layout)
            insert, params = self._insert(batch)
            if self.partitions.partitioning.daily:
                at = 1 + layout.names.index("timestamp")
                self.partitions.ensure(
                    conn, self._table(layout), days_of(r[at] for r in batch.rows)
                )
                self.partitions.maintain(conn, self._table(layout))
            with conn.transaction(), conn.cursor() as cur:
                copy_sql = sql.SQL("COPY {staging} ({columns}) FROM STDIN").format(
                    staging=staging, columns=columns
                )
                with cur.copy(copy_sql) as copy:
                    for row in batch.central_rows():
                        copy.write_row(row)
                if self.partitions.partitioning.daily:
                    key = f"{self._table(layout)} {batch.database_id}"
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
                    newest = sql.SQL(
                        "SELECT coalesce(max(source_row_id), 0) FROM {table} WHERE database_id = %s"
                    ).format(table=sql.Identifier(self._table(layout)))
                    stored_max = cur.execute(newest, (batch.database_id,)).fetchone()
                    params = (*params, stored_max[0] if stored_max else 0)
                cur.execute(insert, params)
                stored = max(cur.rowcount, 0)
                if stored < len(batch) and self.partitions.partitioning.retention:
                    self.partitions.note_expired(cur, self._table(layout), self._staging(layout))
                if stored < len(batch):  # some keys were there: the same readings?
                    cur.execute(self._keep_conflicts(batch))
                    found = sorted(int(str(row[0])) for row in cur.fetchall())
                    if found:
                        self.conflicts += len(found)
                        table_name = self._table(layout)
                        log_conflicts(self.name, table_name, batch.database_id, found)
                return stored
        except psycopg.Error as exc:
            self.close()  # a fresh connection next time; the transaction was rolled back
            raise SinkError(f"{self.name}: write batch: {self._one_line(exc)}") from None

    def _insert(self, batch: Batch) -> tuple[psycopg.sql.Composed, tuple[object, ...]]:
        """The statement that adds the staged rows the table does not hold yet, and its
        parameters (partitioned: the newest stored id of the batch's database follows)."""
        from psycopg import sql

        partitions = self.partitions
        key = (*KEY_COLUMNS, *partitions.key_extra)
        text = "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} AS s"
        params: tuple[object, ...] = ()
        if partitions.partitioning.daily:
            # The table's unique key holds the timestamp too: a key stored with another
            # timestamp is found here, so (database_id, source_row_id) stays unique. One
            # batch of a database at a time, so two collectors cannot both add it.
            same = " AND ".join(f'c."{name}" = s."{name}"' for name in KEY_COLUMNS)
            keep, params = partitions.insert_filter()
            # Ids above the newest this database stored cannot be there (a live node's rows):
            # only the others are looked up, in every partition.
            text += (
                f" WHERE {keep} AND (s.source_row_id > %s OR NOT EXISTS "
                f"(SELECT 1 FROM {{table}} AS c WHERE {same}))"
            )
        text += " ON CONFLICT ({key}) DO NOTHING"
        table = self._table(batch.layout)
        statement = sql.SQL(text).format(
            table=sql.Identifier(table),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in batch.columns),
            staging=sql.Identifier(self._staging(batch.layout)),
            key=sql.SQL(", ").join(sql.Identifier(c) for c in key),
        )
        return statement, params

    def _keep_conflicts(self, batch: Batch) -> psycopg.sql.Composed:
        from psycopg import sql

        def of(alias: str, names: tuple[str, ...]) -> sql.Composed:
            return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)

        table = self._table(batch.layout)
        readings = batch.layout.names
        return sql.SQL(_KEEP_CONFLICTS).format(
            conflicts=sql.Identifier(table + CONFLICTS_SUFFIX),
            table=sql.Identifier(table),
            staging=sql.Identifier(self._staging(batch.layout)),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in batch.columns),
            staged=of("s", batch.columns),
            stored=of("c", readings),
            incoming=of("s", readings),
            kept=of("k", readings),
        )

    def close(self) -> None:
        self._ready = set()
        self.partitions.reset()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
