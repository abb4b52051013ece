"""Reading predictions and labels files: CSV (fast and quoted), JSON lines, SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sensorfleet.score import tables
from sensorfleet.score.columns import to_codes, to_flags, to_floats, to_micros
from sensorfleet.score.tables import TableError, read_file

ROWS = [
    ("A-1", "2024-03-01T00:00:00.000000Z", "0.25", "0"),
    ("A-1", "2024-03-01T00:00:01.500000Z", "", "1"),
    ("B 2", "2024-03-01T00:00:02.000000Z", "-3", "1"),
]
EPOCH = 1709251200  # 2024-03-01T00:00:00Z


def check(columns: tables.Columns) -> None:
    """The three rows above, whatever the file format."""
    assert columns.rows == 3
    codes, labels = to_codes(columns.values["sensor_id"])
    assert [labels[c] for c in codes] == ["A-1", "A-1", "B 2"]
    micros = to_micros(columns.values["timestamp"])
    assert micros.tolist() == [EPOCH * 10**6, EPOCH * 10**6 + 1_500_000, (EPOCH + 2) * 10**6]
    score = to_floats(columns.values["score"])
    assert score[0] == 0.25 and np.isnan(score[1]) and score[2] == -3
    flags, blank = to_flags(columns.values["flag"])
    assert flags.tolist() == [False, True, True] and not blank.any()


def test_plain_and_quoted_csv_read_alike(tmp_path: Path) -> None:
    """An unquoted CSV (split with numpy) and a quoted one with CRLF line ends (the csv
    module) give the same columns; extra columns are ignored."""
    plain = tmp_path / "plain.csv"
    plain.write_text("sensor_id,timestamp,score,flag,note\n" + "".join(
        f"{s},{t},{v},{f},x\n" for s, t, v, f in ROWS
    ))  # fmt: skip
    quoted = tmp_path / "quoted.csv"
    quoted.write_bytes(b"sensor_id,timestamp,score,flag,note\r\n" + b"".join(
        f'"{s}",{t}, {v} ,{f},"a, b"\r\n'.encode() for s, t, v, f in ROWS
    ))  # fmt: skip
    check(read_file(plain, ["sensor_id", "timestamp", "score", "flag"]))
    check(read_file(quoted, ["sensor_id", "timestamp", "score", "flag"]))


def test_jsonl(tmp_path: Path) -> None:
    """JSON lines, with numbers, null and booleans, read like the CSV."""
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"sensor_id": "A-1", "timestamp": "2024-03-01T00:00:00.000000Z", "score": 0.25, '
        '"flag": false}\n'
        '{"sensor_id": "A-1", "timestamp": "2024-03-01T00:00:01.500000Z", "score": null, '
        '"flag": true}\n\n'
        '{"sensor_id": "B 2", "timestamp": "2024-03-01T00:00:02.000000Z", "score": -3, "flag": 1}\n'
    )
    check(read_file(path, ["sensor_id", "timestamp", "score", "flag"]))


def test_sqlite_table_with_nulls_and_rowid_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SQLite table read in slices of three rowids, with a NULL score and deleted rows
    between the kept ones, gives the same columns."""
    path = tmp_path / "p.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE preds (sensor_id TEXT, timestamp TEXT, score REAL, flag INT)")
        for s, t, v, f in ROWS:
            conn.execute("INSERT INTO preds VALUES ('gone', '2024-01-01T00:00:00Z', 1, 1)")
            row = (s, t, float(v) if v else None, int(f))
            conn.execute("INSERT INTO preds VALUES (?, ?, ?, ?)", row)
        conn.execute("DELETE FROM preds WHERE sensor_id = 'gone'")  # rowids 2, 4, 6 remain
    monkeypatch.setattr(tables, "ROWS_PER_QUERY", 3)
    check(read_file(path, ["sensor_id", "timestamp", "score", "flag"]))
    check(read_file(Path(f"{path}"), ["sensor_id", "timestamp", "score", "flag"], "preds"))


def test_ragged_csv_names_the_line(tmp_path: Path) -> None:
    """A line with too few fields is reported with its line number."""
    path = tmp_path / "bad.csv"
    path.write_text("sensor_id,timestamp,flag\nA,2024-03-01T00:00:00Z,1\nA,2024-03-01T00:00:01Z\n")
    with pytest.raises(TableError, match=r"line 3: expected 3 fields like the header \(got 2\)"):
        read_file(path, ["sensor_id", "timestamp", "flag"])


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2024-03-01T00:00:00Z", EPOCH * 10**6),
        ("2024-03-01 00:00:00.25", EPOCH * 10**6 + 250_000),
        ("2024-03-01T02:00:00+02:00", EPOCH * 10**6),
        ("2024-03-01T00:00:00.000001+00:00", EPOCH * 10**6 + 1),
        ("1709251200.5", EPOCH * 10**6 + 500_000),
    ],
)
def test_timestamp_spellings(text: str, micros: int) -> None:
    """ISO 8601 with Z, an offset, a space or no zone (UTC), and epoch seconds all parse."""
    from sensorfleet.score.columns import from_strings

    assert to_micros(from_strings([text, text])).tolist() == [micros, micros]


def test_flag_spellings() -> None:
    """Flags may be 0/1, true/false in any case, or 0.0/1.0; anything else names its row."""
    from sensorfleet.score.columns import ColumnError, from_strings

    flags, blank = to_flags(from_strings(["1", "TRUE", "false", "0.0", "1.0", ""]))
    assert flags.tolist() == [True, True, False, False, True, False]
    assert blank.tolist() == [False] * 5 + [True]
    with pytest.raises(ColumnError, match=r"expected 0 or 1 \(got 'yes'\)"):
        to_flags(from_strings(["0", "yes"]))


def test_numbers_of_an_all_empty_column_are_nan() -> None:
    """A column with no value at all (a healthy machine's rul_seconds) is all NaN."""
    from sensorfleet.score.columns import from_strings

    assert np.isnan(to_floats(from_strings([None, "", None]))).all()
    assert to_floats(from_strings(["", "2"])).tolist()[1] == 2.0


def test_values_of_mixed_lengths_up_to_the_buffer_end() -> None:
    """Values of different lengths, empty ones, and one ending at the very end of the
    buffer come back exactly."""
    from sensorfleet.score.columns import from_strings

    values = ["a", "", "abc", "xy"]
    assert from_strings(values).strings().tolist() == [v.encode() for v in values]
