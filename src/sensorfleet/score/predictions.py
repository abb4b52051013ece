"""A detector's output: one row per judged reading, from CSV, JSON lines or SQLite.

Columns: ``sensor_id``, ``timestamp`` (ISO 8601, or seconds since 1970), and
``score`` (a float, higher = more anomalous), ``flag`` (0/1) or both;
optionally ``fault`` (the predicted anomaly type or fault) and
``rul_seconds``. Other columns are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .columns import (
    Bools,
    Codes,
    ColumnError,
    Floats,
    Ints,
    to_codes,
    to_flags,
    to_floats,
    to_micros,
)
from .tables import TableError, read_file, split_table_argument

COLUMNS = ("sensor_id", "timestamp", "score", "flag", "fault", "rul_seconds")
EXPECTED = (
    "sensor_id, timestamp, and score (a number) and/or flag (0/1); optional: fault, rul_seconds"
)


@dataclass
class Predictions:
    """What a detector said, one entry per row of its file, in file order."""

    source: str
    sensors: list[str]
    sensor: Codes
    time: Ints  # microseconds since 1970, UTC
    score: Floats | None
    flag: Bools | None
    faults: list[str]
    fault: Codes | None  # into ``faults``; "" where the row names none
    rul: Floats | None  # seconds

    def __len__(self) -> int:
        return len(self.time)


def read_predictions(argument: str, flag_name: str = "--predictions") -> Predictions:
    """The predictions file ``argument``; ``InputError`` naming the file and the fix."""
    path, table = split_table_argument(argument)
    try:
        columns = read_file(path, COLUMNS, table)
    except TableError as exc:
        raise InputError([f"{flag_name} {argument}: {exc}"]) from None
    label = columns.label
    missing = [c for c in ("sensor_id", "timestamp") if c not in columns.values]
    if not {"score", "flag"} & set(columns.values):
        missing.append("score or flag")
    if missing:
        found = ", ".join(columns.names) or "none"
        raise InputError(
            [f"{flag_name} {label}: missing {', '.join(missing)}; expected {EXPECTED} "
             f"(columns found: {found})"]
        )  # fmt: skip
    v = columns.values
    current = "sensor_id"
    try:
        sensor, sensors = to_codes(v["sensor_id"])
        current = "timestamp"
        time = to_micros(v["timestamp"])
        current = "score"
        score = to_floats(v["score"]) if "score" in v else None
        current = "flag"
        flag = None
        if "flag" in v:
            flag, blank = to_flags(v["flag"])
            if blank.any():
                row = int(np.flatnonzero(blank)[0])
                raise ColumnError(row, b"", "0 or 1")
        current = "fault"
        fault, faults = to_codes(v["fault"]) if "fault" in v else (None, [])
        current = "rul_seconds"
        rul = to_floats(v["rul_seconds"], "seconds") if "rul_seconds" in v else None
    except ColumnError as exc:
        raise InputError([f"{flag_name} {label}: row {exc.row + 1}: {current}: {exc}"]) from None
    return Predictions(label, sensors, sensor, time, score, flag, faults, fault, rul)
