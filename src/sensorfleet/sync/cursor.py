"""``--cursor FILE``: the highest row id shipped per database id, for read-only collecting.

The file is JSON and only ever replaced whole (write a temporary file, fsync,
rename, fsync the folder), and only after the sink acknowledged the rows it
covers, so after a crash it is either the old mark or the new one, never a
torn write, and never ahead of what the sink holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._problems import parse_mapping
from ..errors import InputError
from ..node.clock import format_instant

VERSION = 1


class CursorStore:
    """High-water marks keyed by the node's database id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._marks: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        fix = "fix it, or delete it to ship every row again"
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError([f"{self.path}: (file): cannot read cursor file: {exc}"]) from None
        try:
            # The config's parser: strict JSON, and nesting past its limit is one line, not
            # a RecursionError from the json module.
            data = parse_mapping(str(self.path), text, "JSON")
        except InputError as exc:
            raise InputError([f"{problem}; {fix}" for problem in exc.problems]) from None
        marks = data.get("databases")
        if not isinstance(marks, dict) or data.get("version") != VERSION:
            raise InputError(
                [f"{self.path}: (top level): expected a version {VERSION} cursor file; {fix}"]
            )
        for database_id, entry in marks.items():
            last = entry.get("last_id") if isinstance(entry, dict) else None
            if not isinstance(last, int) or isinstance(last, bool) or last < 0:
                raise InputError(
                    [
                        f"{self.path}: databases.{database_id}.last_id: expected a whole "
                        f"number >= 0 (got {last!r}); {fix}"
                    ]
                )
        return marks

    def get(self, database_id: str) -> int:
        """The highest id already shipped from this database (0 if none)."""
        entry = self._marks.get(database_id)
        return int(entry["last_id"]) if entry else 0

    def advance(self, database_id: str, last_id: int, source: str, now: float) -> None:
        """Record that every row up to ``last_id`` is acknowledged at ``now``, and persist it."""
        if last_id <= self.get(database_id):
            return
        self._set(database_id, last_id, source, now)

    def rewind(self, database_id: str, last_id: int, source: str, now: float) -> None:
        """Move the mark back to ``last_id`` (the file was rolled back below it), and persist."""
        if last_id < self.get(database_id):
            self._set(database_id, last_id, source, now)

    def _set(self, database_id: str, last_id: int, source: str, now: float) -> None:
        self._marks[database_id] = {
            "last_id": last_id,
            "source": source,
            "updated_at": format_instant(now),
        }
        self.save()

    def save(self) -> None:
        """Replace the file atomically (temp file, fsync, rename, fsync folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        body = json.dumps({"version": VERSION, "databases": self._marks}, indent=1, sort_keys=True)
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(body + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
