#!/usr/bin/env python3
"""Run SQL against a node's database from inside the image (it ships no sqlite3 shell).

    docker exec sensor_FACTORY_1_OLD sensorfleet-query "SELECT COUNT(*) FROM sensor_readings"
    docker run --rm -v "$(pwd)/data:/app/data" sensor-simulator sensorfleet-query --tsv "..."
    sensorfleet-query --db /app/data --tsv "..."     # every *.db in the folder, rows joined

Installed in the image as ``sensorfleet-query``; standard library only.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_DB = "/app/data/sensor_data.db"
# Not taken from the docstring: the image runs Python with -OO, which drops docstrings.
DESCRIPTION = "Run SQL against a node's database from inside the image (it ships no sqlite3 shell)."


def show(value: object) -> str:
    """A value as text: NULL as empty, floats as SQLite prints them."""
    return "" if value is None else str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as aligned columns under a header line."""
    cells = [list(header), *([show(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def run_query(db: Path, sql: str, timeout: float) -> tuple[list[str], list[tuple[object, ...]]]:
    """Column names and rows of ``sql``; the database must already exist."""
    if not db.is_file():
        raise FileNotFoundError("no such database (has the node written anything yet?)")
    connection = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=timeout)
    try:
        cursor = connection.execute(sql)
        header = [column[0] for column in cursor.description or []]
        return header, cursor.fetchall()
    finally:
        connection.close()


def databases(paths: Sequence[str]) -> list[Path]:
    """The files named, with a folder standing for every ``*.db`` file in it."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        found.extend(sorted(path.glob("*.db")) if path.is_dir() else [path])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Print the result of one SQL statement as a table or tab-separated values."""
    parser = argparse.ArgumentParser(prog="sensorfleet-query", description=DESCRIPTION)
    parser.add_argument("sql", help="one SQL statement")
    parser.add_argument(
        "--db",
        action="append",
        help=f"database file, or a folder of *.db files; repeatable, the rows of all are "
        f"joined (default: {DEFAULT_DB})",
    )
    parser.add_argument("--tsv", action="store_true", help="tab-separated rows, no header")
    parser.add_argument(
        "--busy-timeout", type=float, default=30.0, help="seconds to wait for a writer's lock"
    )
    args = parser.parse_args(argv)
    header: list[str] = []
    rows: list[tuple[object, ...]] = []
    status = 0
    for db in databases(args.db or [DEFAULT_DB]):
        try:
            found, more = run_query(db, args.sql, args.busy_timeout)
        except (sqlite3.Error, OSError) as exc:
            print(f"sensorfleet-query: {db}: {exc}", file=sys.stderr)
            status = 1
            continue
        header = header or found
        rows.extend(more)
    if args.tsv:
        for row in rows:
            print("\t".join(show(v) for v in row))
    elif header:
        print(format_table(header, rows))
    return status


if __name__ == "__main__":
    sys.exit(main())
