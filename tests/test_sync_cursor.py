"""The --cursor file: high-water marks per database id, replaced atomically, checked on load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sensorfleet.errors import InputError
from sensorfleet.sync.cursor import CursorStore


def test_marks_survive_a_restart(tmp_path: Path) -> None:
    """Advanced marks are on disk at once, dated by the time given, and are what a new
    process reads back."""
    path = tmp_path / "state" / "cursor.json"
    cursor = CursorStore(path)
    assert cursor.get("a") == 0
    cursor.advance("a", 500, "node-a.db", 0.0)
    cursor.advance("b", 7, "node-b.db", 1.5)
    again = CursorStore(path)
    assert (again.get("a"), again.get("b"), again.get("c")) == (500, 7, 0)
    assert [p.name for p in path.parent.iterdir()] == ["cursor.json"]
    saved = json.loads(path.read_text())["databases"]
    assert saved["b"]["updated_at"] == "1970-01-01T00:00:01.500000Z"


def test_marks_never_move_backwards(tmp_path: Path) -> None:
    """Advancing to a lower id than already recorded keeps the higher mark."""
    cursor = CursorStore(tmp_path / "c.json")
    cursor.advance("a", 10, "x", 0.0)
    cursor.advance("a", 5, "x", 0.0)
    assert CursorStore(tmp_path / "c.json").get("a") == 10


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "invalid JSON"),
        ('{"version": 9, "databases": {}}', "expected a version 1 cursor file"),
        ('{"version": 1, "databases": {"a": {"last_id": "x"}}}', "databases.a.last_id"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"version": 1, "databases": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001, "nested"),
        ("", "file is empty"),
    ],
)
def test_damaged_cursor_files_are_refused(tmp_path: Path, text: str, words: str) -> None:
    """A cursor file that cannot be trusted (invalid, nested 100,000 levels deep, empty) is
    refused in one line that says how to fix it, never a traceback."""
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        CursorStore(path)
    (line,) = caught.value.problems
    assert line.startswith(str(path)) and words in line and "delete it" in line
