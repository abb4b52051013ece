"""Table layouts: every reading column named once, with its type, unit and nullability.

A ``TableLayout`` is the one description of a readings table. The node's DDL and
INSERT, the central SQLite and PostgreSQL sinks' DDL, the records the stream sinks
send, the report's table checks and the faces' units all read it, so a column, its
unit or its SQL type is never restated by hand. ``CLASSIC`` describes today's
``sensor_readings`` (its rendering is pinned byte for byte by the golden test);
``equipment_layout`` describes the ``<type>_readings`` table of an equipment model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Literal, Protocol

from ..errors import InputError

ColumnKind = Literal["time", "text", "real", "integer"]
# What a column is for: who wrote the reading, when, what it measured, ground truth.
ColumnRole = Literal["time", "identity", "channel", "status", "label"]

_SQLITE_TYPES: dict[ColumnKind, str] = {
    "time": "TEXT",  # ISO-8601 UTC with microseconds, which sorts as text
    "text": "TEXT",
    "real": "REAL",
    "integer": "INTEGER",
}
_POSTGRES_TYPES: dict[ColumnKind, str] = {
    "time": "timestamptz",
    "text": "text",
    "real": "double precision",
    "integer": "integer",
}
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Column:
    """One column of a readings table."""

    name: str
    kind: ColumnKind
    role: ColumnRole
    nullable: bool = True
    default: int | None = None
    unit: str | None = None
    description: str = ""

    def _constraints(self) -> str:
        text = "" if self.nullable else " NOT NULL"
        return text if self.default is None else f"{text} DEFAULT {self.default}"

    def sqlite_sql(self) -> str:
        """The column as SQLite declares it (``name TYPE [NOT NULL] [DEFAULT n]``)."""
        return f"{self.name} {_SQLITE_TYPES[self.kind]}{self._constraints()}"

    def postgres_sql(self) -> str:
        """The column as PostgreSQL declares it (every name quoted: ``timestamp`` is a
        keyword there)."""
        return f'"{self.name}" {_POSTGRES_TYPES[self.kind]}{self._constraints()}'


def _identity_column(name: str, nullable: bool = True) -> Column:
    return Column(name, "text", "identity", nullable=nullable)


TIMESTAMP = Column("timestamp", "time", "time", nullable=False, description="scheduled UTC time")
SENSOR_ID = _identity_column("sensor_id", nullable=False)
# The identity fields stamped on every row, after the measured values, in this order.
IDENTITY_TAIL: tuple[Column, ...] = tuple(
    _identity_column(name) for name in ("firmware_version", "model", "manufacturer", "location")
)


@dataclass(frozen=True)
class TableLayout:
    """The reading columns of one table, in row order (``id`` and ``synced`` excluded:
    SQLite fills them)."""

    table: str
    type_name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def channels(self) -> tuple[Column, ...]:
        """The measured values, in row order."""
        return self.with_role("channel")

    def with_role(self, *roles: ColumnRole) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.role in roles)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def sqlite_columns_sql(self) -> str:
        """The column definitions, one per line, as the node's and the central SQLite
        table declare them."""
        return ",\n".join(f"    {column.sqlite_sql()}" for column in self.columns)

    def postgres_columns_sql(self) -> str:
        """The column definitions as the central PostgreSQL table declares them."""
        return ",\n".join(f"    {column.postgres_sql()}" for column in self.columns)

    def node_schema_sql(self) -> str:
        """CREATE statements of the node's table and its indexes (``;``-separated)."""
        table = self.table
        return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
{self.sqlite_columns_sql()},
    synced INTEGER NOT NULL DEFAULT 0
);
-- Keeps "WHERE synced = 0 ORDER BY id" cheap however many synced rows pile up.
CREATE INDEX IF NOT EXISTS idx_{table}_unsynced ON {table}(id) WHERE synced = 0;
CREATE INDEX IF NOT EXISTS idx_{table}_timestamp ON {table}(timestamp);
CREATE INDEX IF NOT EXISTS idx_{table}_sensor_time ON {table}(sensor_id, timestamp);
"""

    def relaxed(self) -> TableLayout:
        """The layout a central table of many nodes uses: an equipment model's label
        columns nullable, so rows of nodes that hide their labels fit beside rows that
        carry them (the classic layout is returned as it is)."""
        if self.type_name == CLASSIC_TYPE:
            return self
        columns = tuple(
            replace(column, nullable=True, default=None) if column.role == "label" else column
            for column in self.columns
        )
        return TableLayout(self.table, self.type_name, columns)

    def to_json(self) -> str:
        """The columns as JSON, as the node file's ``sensorfleet_tables`` keeps them so a
        collector can read the table without the catalogue that made it."""
        return json.dumps([asdict(column) for column in self.columns], ensure_ascii=False)

    @classmethod
    def from_json(cls, table: str, type_name: str, text: str) -> TableLayout:
        """The layout ``to_json`` wrote (``ValueError`` for anything else)."""
        try:
            columns = tuple(Column(**item) for item in json.loads(text))
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{table}: not a table layout ({exc})") from None
        bad = [c.name for c in columns if not _IDENTIFIER.match(c.name)]
        if bad or not _IDENTIFIER.match(table):
            raise ValueError(f"{table}: not a table layout (column names {bad})")
        return cls(table, type_name, columns)

    def insert_sql(self) -> str:
        """INSERT of one row in ``names`` order."""
        names = self.names
        return (
            f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        )


CLASSIC = TableLayout(
    table="sensor_readings",
    type_name="temperature_vibration",
    columns=(
        TIMESTAMP,
        SENSOR_ID,
        Column("temperature", "real", "channel", unit="°C", description="temperature"),
        Column("vibration", "real", "channel", unit="mm/s²", description="vibration"),
        Column("voltage", "real", "channel", unit="V", description="supply voltage"),
        Column("status_code", "integer", "status", nullable=False, default=0),
        Column("anomaly_flag", "integer", "label", nullable=False, default=0),
        Column("anomaly_type", "text", "label"),
        *IDENTITY_TAIL,
    ),
)
CLASSIC_TYPE = CLASSIC.type_name

# Ground truth on every equipment row, after its channels (``labels.mode: inline``).
LABEL_COLUMNS: tuple[Column, ...] = (
    Column("state", "text", "label", nullable=False, description="operating state"),
    Column("fault", "text", "label", description="active fault, NULL when none"),
    Column("fault_severity", "real", "label", description="0 to 1"),
    Column("fault_started_at", "time", "label", description="UTC start of the active fault"),
    Column("instrument_fault", "text", "label", description="faulty instrument, NULL when none"),
    Column("health", "real", "label", description="1 (new) down to 0 (failed)"),
    Column("rul_seconds", "real", "label", unit="s", description="NULL while healthy"),
    Column("maintenance", "integer", "label", nullable=False, default=0, description="0 or 1"),
)
_RESERVED = frozenset(
    {"id", "synced", TIMESTAMP.name, SENSOR_ID.name}
    | {column.name for column in (*LABEL_COLUMNS, *IDENTITY_TAIL)}
    | {"database_id", "source_row_id", "received_at", "type", "table"}
)


class NamedChannel(Protocol):
    """What a layout needs of a model's channel (``equipment.ChannelSpec`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...


@dataclass(frozen=True)
class ChannelColumn:
    """A channel named by hand (tests, tools)."""

    name: str
    unit: str


def truth_table_of(type_name: str) -> str:
    """The truth file's table of an equipment type (``labels.mode: hidden``)."""
    return f"{type_name}_truth"


def truth_schema_sql(type_name: str) -> str:
    """CREATE statement of a type's table in the truth file: the labels of each reading,
    keyed by the node file's database id and the reading's row id there."""
    columns = ",\n".join(
        f"    {column.sqlite_sql()}" for column in (SENSOR_ID, TIMESTAMP, *LABEL_COLUMNS)
    )
    return f"""CREATE TABLE IF NOT EXISTS {{schema}}.{truth_table_of(type_name)} (
    database_id TEXT NOT NULL,
    reading_id INTEGER NOT NULL,
{columns},
    PRIMARY KEY (database_id, reading_id)
) WITHOUT ROWID"""


# The node file's registry of its equipment tables: name, type and layout (``to_json``).
TABLES_TABLE = "sensorfleet_tables"
TABLES_SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLES_TABLE} (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    layout TEXT NOT NULL
)"""

TRUTH_KEY: tuple[str, ...] = ("database_id", "reading_id", SENSOR_ID.name, TIMESTAMP.name)


def table_of(type_name: str) -> str:
    """The node table of a sensor type: ``sensor_readings`` for the classic sensor,
    ``<type>_readings`` for an equipment model."""
    return CLASSIC.table if type_name == CLASSIC_TYPE else f"{type_name}_readings"


def equipment_layout(
    type_name: str, channels: Iterable[NamedChannel], labels_inline: bool = True
) -> TableLayout:
    """The ``<type>_readings`` layout of an equipment model: identity and time, one REAL
    column per channel, the ground-truth labels (unless hidden), the identity fields.

    Raises ``InputError`` for a type or channel name that cannot be a plain SQL
    identifier or that collides with a column every equipment table has.
    """
    problems = []
    if not _IDENTIFIER.match(type_name) or type_name == CLASSIC_TYPE:
        problems.append(
            f"equipment type {type_name!r}: expected lowercase letters, digits and _ "
            f"(starting with a letter), other than {CLASSIC_TYPE!r}"
        )
    columns = []
    for channel in channels:
        if not _IDENTIFIER.match(channel.name) or channel.name in _RESERVED:
            problems.append(
                f"equipment type {type_name!r}: channel {channel.name!r}: expected lowercase "
                "letters, digits and _, and none of " + ", ".join(sorted(_RESERVED))
            )
        columns.append(Column(channel.name, "real", "channel", unit=channel.unit or None))
    if problems:
        raise InputError(problems)
    return TableLayout(
        table=table_of(type_name),
        type_name=type_name,
        columns=(
            TIMESTAMP,
            SENSOR_ID,
            *columns,
            *(LABEL_COLUMNS if labels_inline else ()),
            *IDENTITY_TAIL,
        ),
    )
