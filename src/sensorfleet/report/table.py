"""What the report reads: one table of readings, in a node file or a central store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._redaction import redact
from ..node.layout import CLASSIC
from .dialect import POSTGRES, SQLITE, Dialect

# The columns a table must have for the report to read it: when and who, and the labels.
NODE_COLUMNS: tuple[str, ...] = tuple(
    column.name for column in CLASSIC.with_role("time", "identity", "label")
)


@dataclass(frozen=True)
class ReportSource:
    """One readable table of readings."""

    path: Path | None  # an SQLite file, or None for a URL
    table: str
    kind: str  # "node" or "central"
    has_synced: bool
    database_id: str | None  # a node file's own id; None for a central store
    # How to read the table in slices: "rowid" ranges, per-origin "key" ranges
    # (a central store's (database_id, source_row_id), WITHOUT ROWID), or "none".
    slicing: str = "rowid"
    url: str | None = None  # a PostgreSQL central store

    @property
    def label(self) -> str:
        if self.url is not None:
            return redact(self.url)
        return str(self.path)

    @property
    def dialect(self) -> Dialect:
        return POSTGRES if self.url is not None else SQLITE
