"""The few places where SQLite and PostgreSQL spell the report's SQL differently.

Queries are written once, for SQLite, with ``?`` placeholders; a dialect
supplies the differing expressions and rewrites the placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """How one database engine spells a handful of expressions."""

    name: str
    epoch: str  # seconds since 1970 of the "timestamp" column, as a number
    is_not: str  # null-safe inequality
    placeholder: str

    def text_time(self, expression: str) -> str:
        """``expression`` (a timestamp) as ISO 8601 UTC text like the node writes."""
        if self.name == "postgresql":
            return (
                f"to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
            )
        return expression

    def floor(self, expression: str) -> str:
        """The integer part of a non-negative number."""
        if self.name == "postgresql":
            return f"FLOOR({expression})::bigint"
        return f"CAST({expression} AS INTEGER)"

    def sql(self, text: str) -> str:
        """``text`` with its ``?`` placeholders in this engine's style."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect(
    name="sqlite",
    epoch='(julianday("timestamp") - 2440587.5) * 86400.0',
    is_not="IS NOT",
    placeholder="?",
)
POSTGRES = Dialect(
    name="postgresql",
    epoch='EXTRACT(EPOCH FROM "timestamp")::double precision',
    is_not="IS DISTINCT FROM",
    placeholder="%s",
)
