"""The one small interface every sink implements, and the batch it receives.

A sink's ``write`` returns only once the destination has acknowledged the
batch (committed, fsynced, answered 2xx, sent PUBACK). Until then the
collector marks nothing, so a crash at any moment loses no row. Delivery is
at-least-once: the same batch may arrive again after a crash, and sinks with
storage upsert on the key ``(database_id, source_row_id)`` so it is stored once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ...node.layout import CLASSIC, TableLayout

log = structlog.get_logger("sensorfleet.sync")

# Columns of a central row, in order: the duplicate-free key, every column the
# node writes for a reading, and when the central side received it.
KEY_COLUMNS: tuple[str, ...] = ("database_id", "source_row_id")


def central_columns(layout: TableLayout) -> tuple[str, ...]:
    """The central row's columns for a table of ``layout``."""
    return (*KEY_COLUMNS, *layout.names, "received_at")


CENTRAL_COLUMNS: tuple[str, ...] = central_columns(CLASSIC)


# A sink with storage keeps the second reading a key names here, beside its table.
CONFLICTS_SUFFIX = "_conflicts"
# Keys named in one warning line; the count covers them all.
LOGGED_KEYS = 20


def log_conflicts(sink: str, table: str, database_id: str, source_row_ids: Sequence[int]) -> None:
    """Say that keys already held a different reading, and where the new one was kept."""
    log.warning(
        "key holds a different reading",
        sink=sink,
        table=table,
        database_id=database_id,
        source_row_ids=list(source_row_ids[:LOGGED_KEYS]),
        count=len(source_row_ids),
        kept_in=table + CONFLICTS_SUFFIX,
        action="both readings kept: the stored one in place, the new one beside it",
    )


class SinkError(Exception):
    """The sink could not take a batch now (unreachable, refused, timed out).

    The collector backs off and sends the same rows again later; nothing is marked.
    """


class SinkClosedError(SinkError):
    """The destination went away for good (a reader closed the pipe): stop shipping.

    ``written`` leading rows of the batch did arrive; the collector marks
    exactly those and ends cleanly.
    """

    def __init__(self, message: str, written: int) -> None:
        super().__init__(message)
        self.written = written


class SinkInterruptedError(SinkClosedError):
    """The collector was told to stop while the sink waited on a destination that took
    nothing more (a reader that stopped reading): ``written`` leading rows arrived."""


@dataclass(frozen=True)
class Batch:
    """Rows read from one node database in one pass, in id order.

    ``rows`` are tuples ``(id, *layout.names)`` exactly as the node stored them in
    the table of ``layout`` (``sensor_readings`` by default, or an equipment model's
    ``<type>_readings``), or ``(id,)`` alone for a sink whose ``copies_rows`` is true
    (it reads the rows from the node file at ``source`` itself).
    """

    database_id: str
    source: str
    rows: list[tuple[Any, ...]]
    received_at: str
    layout: TableLayout = CLASSIC
    # Derived features of each row (``sync --features``), added to its stream record.
    extras: tuple[dict[str, Any], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The central row's columns (``CENTRAL_COLUMNS`` for classic readings)."""
        return central_columns(self.layout)

    @property
    def equipment(self) -> bool:
        return self.layout.type_name != CLASSIC.type_name

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def first_id(self) -> int:
        return int(self.rows[0][0])

    @property
    def last_id(self) -> int:
        return int(self.rows[-1][0])

    @property
    def ids(self) -> list[int]:
        return [int(row[0]) for row in self.rows]

    def central_rows(self) -> Iterator[tuple[Any, ...]]:
        """Rows in ``columns`` order."""
        database_id, received_at = self.database_id, self.received_at
        for row in self.rows:
            yield (database_id, *row, received_at)

    def head(self, count: int) -> Batch:
        """The first ``count`` rows of this batch (what a closed destination did receive)."""
        return Batch(
            self.database_id,
            self.source,
            self.rows[:count],
            self.received_at,
            self.layout,
            self.extras[:count],
        )

    def records(self) -> list[dict[str, Any]]:
        """Rows as mappings keyed by ``columns`` (for JSON sinks). An equipment reading's
        record also names its ``table`` and ``type``; a record without them is a classic
        reading, byte for byte as before. Derived features follow the row's columns."""
        columns = self.columns
        if not self.equipment:
            records = [dict(zip(columns, row, strict=True)) for row in self.central_rows()]
        else:
            origin = {"table": self.layout.table, "type": self.layout.type_name}
            records = [
                {**origin, **dict(zip(columns, row, strict=True))} for row in self.central_rows()
            ]
        if self.extras:
            for record, extra in zip(records, self.extras, strict=True):
                record.update(extra)
        return records

    def json_lines(self) -> list[str]:
        """Each row as one compact JSON object (no newline): the JSONL, stdout, Kafka and
        per-reading MQTT message format."""
        return [json_record(record) for record in self.records()]

    def payload(self) -> dict[str, Any]:
        """The JSON document the HTTP and MQTT sinks send for this batch."""
        origin = {"table": self.layout.table, "type": self.layout.type_name}
        return {
            **(origin if self.equipment else {}),
            "database_id": self.database_id,
            "source": self.source,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "count": len(self.rows),
            "rows": self.records(),
        }


def json_record(record: dict[str, Any]) -> str:
    """One central row as compact JSON, the same bytes in every sink that sends JSON."""
    return json.dumps(record, separators=(",", ":"))


class Sink(Protocol):
    """Where the collector ships rows. Held to one shared contract test."""

    @property
    def name(self) -> str:
        """The sink's URL with any password hidden (for logs and errors)."""
        ...

    def open(self) -> None:
        """Connect and prepare the destination; raise ``SinkError`` if unreachable."""
        ...

    def write(self, batch: Batch) -> int | None:
        """Store one batch durably; return rows newly stored (None if unknown).

        Raise ``SinkError`` when the batch was not acknowledged.
        """
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...
