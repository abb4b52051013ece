"""PostgreSQL central stores (``sensorfleet sync --sink postgresql://…``), read-only.

psycopg is the optional ``sync`` extra; without it a PostgreSQL source is one
problem line naming the install command, and file sources still work.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .table import NODE_COLUMNS, ReportSource

SCHEMES = ("postgresql", "postgres")
DEFAULT_TABLE = "sensor_readings"
INSTALL_HINT = "pip install 'sensorfleet[sync]'"


def is_url(argument: str) -> bool:
    """True for ``scheme://…`` arguments (a file name never contains ``://``)."""
    return "://" in argument


def split_url(url: str) -> tuple[str, str]:
    """The libpq connection URL and the table name (``?table=NAME``, else sensor_readings)."""
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    table = next((v for k, v in options if k == "table"), DEFAULT_TABLE)
    rest = urlencode([(k, v) for k, v in options if k != "table"])
    # Unquoted names fold to lower case in PostgreSQL, as the sync sink created them.
    return urlunsplit(parts._replace(query=rest)), table.lower()


def open_postgres(url: str) -> Any:
    """A read-only psycopg connection; ``ValueError`` with the reason if there is none."""
    try:
        import psycopg
    except ImportError:
        raise ValueError(
            f"reading PostgreSQL needs psycopg, which is not installed; {INSTALL_HINT}"
        ) from None
    conninfo, _ = split_url(url)
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot connect ({reason})") from None
    conn.read_only = True  # the report never writes, whatever the account may do
    return conn


def inspect_url(url: str) -> ReportSource:
    """Describe the readings table behind ``url``; ``ValueError`` with the reason if none."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"unsupported URL scheme {scheme!r}; expected a database file, a folder, "
            "or postgresql://USER@HOST:PORT/DBNAME[?table=NAME]"
        )
    _, table = split_url(url)
    conn = open_postgres(url)
    try:
        columns = {
            str(row[0])
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
        }
    finally:
        conn.close()
    if not columns:
        raise ValueError(f"no table {table!r} (name another with ?table=NAME)")
    if not set(NODE_COLUMNS) <= columns:
        missing = ", ".join(sorted(set(NODE_COLUMNS) - columns))
        raise ValueError(f"table {table!r} lacks the reading columns ({missing})")
    keyed = {"database_id", "source_row_id"} <= columns
    return ReportSource(
        path=None,
        url=url,
        table=table,
        kind="central" if "database_id" in columns else "node",
        has_synced="synced" in columns,
        database_id=None,
        slicing="key" if keyed else "none",
    )
