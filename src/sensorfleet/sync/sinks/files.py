"""``jsonl:///dir`` and ``csv:///dir``: rotated files of central rows.

Rows are appended to ``<dir>/readings-<UTC time>-<random>.<ext>.partial`` and
each batch is fsynced before it counts as acknowledged. The file is renamed
to its final name (without ``.partial``) when it reaches ``max_bytes`` or
``max_seconds``, or when the collector stops; a ``.partial`` file left by a
crash is cut back to its last whole line and renamed on the next start.
Consumers read only final names. Files cannot upsert: after a crash a batch
may appear twice, and consumers drop repeats by ``(database_id, source_row_id)``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ...node.layout import CLASSIC, TableLayout
from .base import Batch, SinkError, central_columns, json_record

PARTIAL = ".partial"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_SECONDS = 3600.0


def _jsonl(rows: list[dict[str, Any]], _columns: tuple[str, ...]) -> str:
    return "".join(json_record(row) + "\n" for row in rows)


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([row[c] for c in columns] for row in rows)
    return buffer.getvalue()


class FilesSink:
    """Append-only rotated files, one row per line.

    Classic readings go to ``readings-…`` files; each equipment table's rows to files of
    their own, ``<type>_readings-…``, so a CSV file always has one header.
    """

    def __init__(
        self,
        directory: Path,
        fmt: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        clock: Callable[[], float] = time.time,
        layout: TableLayout = CLASSIC,
    ) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown file format {fmt!r}")
        self.directory = directory
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._clock = clock
        self._layout = layout
        self._prefix = "readings" if layout.table == CLASSIC.table else layout.table
        self._columns = central_columns(layout)
        self._format: Callable[[list[dict[str, Any]], tuple[str, ...]], str] = (
            _jsonl if fmt == "jsonl" else _csv
        )
        self._header = "" if fmt == "jsonl" else ",".join(self._columns) + "\n"
        self._tables: dict[TableLayout, FilesSink] = {}  # equipment tables' own files
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._opened_at = 0.0

    @property
    def name(self) -> str:
        return f"{self.fmt}:///{self.directory}"

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for leftover in sorted(self.directory.glob(f"*.{self.fmt}{PARTIAL}")):
                self._recover(leftover)
        except OSError as exc:
            raise SinkError(f"{self.name}: open directory: {exc}") from None

    def _recover(self, path: Path) -> None:
        """Cut a crashed file back to its last whole line, then publish it."""
        data = path.read_bytes()
        keep = data[: data.rfind(b"\n") + 1]
        if len(keep) <= len(self._header.encode()):
            path.unlink()
            return
        if len(keep) != len(data):
            with open(path, "r+b") as handle:
                handle.truncate(len(keep))
                os.fsync(handle.fileno())
        os.replace(path, path.with_name(path.name.removesuffix(PARTIAL)))

    def _start_file(self) -> IO[str]:
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{self._prefix}-{stamp}Z-{secrets.token_hex(4)}.{self.fmt}{PARTIAL}"
        path = self.directory / name
        handle = open(path, "x", encoding="utf-8", newline="")  # noqa: SIM115 - kept open
        handle.write(self._header)
        self._file, self._path, self._opened_at = handle, path, self._clock()
        return handle

    def write(self, batch: Batch) -> None:
        if batch.layout != self._layout:
            self._table_sink(batch.layout).write(batch)
            return
        text = self._format(batch.records(), self._columns)
        try:
            handle = self._file or self._start_file()
            start = handle.tell()
            try:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                # Leave no half batch behind: the whole batch is sent again later.
                handle.truncate(start)
                raise
            if (
                handle.tell() >= self.max_bytes
                or self._clock() - self._opened_at >= self.max_seconds
            ):
                self._rotate()
        except OSError as exc:
            self._abandon()
            raise SinkError(f"{self.name}: write batch: {exc}") from None

    def _rotate(self) -> None:
        """Publish the current file under its final name."""
        if self._file is None or self._path is None:
            return
        handle, path = self._file, self._path
        self._file = self._path = None
        handle.close()
        os.replace(path, path.with_name(path.name.removesuffix(PARTIAL)))
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _abandon(self) -> None:
        if self._file is not None:
            handle = self._file
            self._file = None
            with contextlib.suppress(OSError):
                handle.close()
            if self._path is not None:
                # On failure it stays .partial and is recovered on the next start.
                with contextlib.suppress(OSError):
                    self._recover(self._path)
            self._path = None

    def _table_sink(self, layout: TableLayout) -> FilesSink:
        found = self._tables.get(layout)
        if found is None:
            found = FilesSink(
                self.directory, self.fmt, self.max_bytes, self.max_seconds, self._clock, layout
            )
            self._tables[layout] = found
        return found

    def close(self) -> None:
        for table in self._tables.values():
            table.close()
        try:
            self._rotate()
        except OSError:
            self._abandon()
