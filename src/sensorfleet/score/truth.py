"""Ground truth: which readings were anomalous, of what kind, on which sensor.

A truth source is a node database, a folder of them, a central store that
``sensorfleet sync`` filled (SQLite file or ``postgresql://`` URL), or a
labels file (CSV, JSON lines or SQLite) such as the one an equipment model
writes when its labels are hidden from the readings. Any table with
``sensor_id``, ``timestamp`` and labels is read; the labels are either

- the classic sensor's ``anomaly_flag`` and ``anomaly_type`` (a missing-data
  row is flagged, so it is an anomaly of type ``missing_data``), or
- an equipment model's ``fault`` (NULL or empty while healthy) and, where the table has
  it, ``instrument_fault`` (a fault of the measuring instrument), with
  ``rul_seconds`` when the model predicts a remaining useful life.

``model`` and ``firmware_version`` are read when present, for the
breakdowns. Readings are returned sorted by sensor, then time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._redaction import redact
from ..errors import InputError
from ..node import store
from ..report import postgres
from ..report.sources import expand_path, open_readonly
from .columns import (
    Bools,
    Codes,
    ColumnError,
    Floats,
    Ints,
    TextColumn,
    concat,
    to_codes,
    to_flags,
    to_floats,
    to_micros,
)
from .tables import (
    Columns,
    TableError,
    file_kind,
    read_file,
    read_rows,
    split_table_argument,
    sqlite_chunks,
    table_columns,
)

KEYS = ("sensor_id", "timestamp")
CLASSIC_LABELS = ("anomaly_flag", "anomaly_type")
EQUIPMENT_LABELS = ("fault", "instrument_fault", "rul_seconds")
GROUPS = ("model", "firmware_version")
CLASSIC_CHANNELS = ("temperature", "vibration", "voltage")
# REAL columns of an equipment table that are labels, not measurements.
NOT_CHANNELS = frozenset({"health", "rul_seconds", "fault_severity"})
NORMAL = ""  # the kind of a reading that is not anomalous
UNLABELLED = "anomaly"  # the kind of a flagged reading whose type is empty


@dataclass
class Truth:
    """Every reading of the truth source, sorted by sensor then time."""

    source: str
    sensors: list[str]
    sensor: Codes
    time: Ints  # microseconds since 1970, UTC
    anomaly: Bools
    kinds: list[str]  # kinds[0] is NORMAL
    kind: Codes
    models: list[str]
    model: Codes
    firmwares: list[str]
    firmware: Codes
    rul: Floats  # seconds; NaN where the source has none
    channels: dict[str, Floats] = field(default_factory=dict)
    scheme: str = "anomaly_type"  # what ``kind`` holds: "anomaly_type" or "fault"

    def __len__(self) -> int:
        return len(self.time)

    @property
    def has_rul(self) -> bool:
        return bool(np.isfinite(self.rul).any())


def read_truth(argument: str, channels: bool = False) -> Truth:
    """The truth behind ``--truth ARGUMENT``; ``InputError`` naming what is wrong."""
    decoded = _Decoded()
    problems: list[str] = []
    if postgres.is_url(argument):
        parts, problems = _from_postgres(argument, channels)
        for part in parts:
            decoded.add(part)
    else:
        path, table = split_table_argument(argument)
        paths, problem = expand_path(str(path))
        if problem:
            raise InputError([f"--truth {problem}"])
        for found in paths:
            try:
                _from_file(found, table, channels, decoded.add)
            except TableError as exc:
                problems.append(f"--truth {found}: {exc}")
    if problems:
        raise InputError(problems)
    if not decoded.parts:
        raise InputError([f"--truth {argument}: no readings with labels found"])
    if decoded.error is not None:
        raise decoded.error
    return decoded.combine(argument if not postgres.is_url(argument) else redact(argument))


def _wanted(channels: bool) -> list[str]:
    wanted = [*KEYS, *CLASSIC_LABELS, *EQUIPMENT_LABELS, *GROUPS]
    if channels:
        wanted += list(CLASSIC_CHANNELS)
    return wanted


def _labelled(names: Sequence[str]) -> bool:
    return set(KEYS) <= set(names) and bool({"anomaly_flag", "fault"} & set(names))


def _from_file(
    path: Path, table: str | None, channels: bool, found: Callable[[Columns], None]
) -> None:
    """Every part of the file's labelled readings, passed to ``found`` as it is read (so it
    is decoded while the next slices of a table are still being read)."""
    if file_kind(path) != "sqlite":
        labels = read_file(path, _wanted(channels), table)
        _check(labels)
        found(labels)
        return

    try:
        conn = open_readonly(path)
    except sqlite3.Error as exc:
        raise TableError(f"cannot open the database ({exc})") from None
    with closing(conn):
        try:
            tables = [table] if table is not None else _label_tables(conn)
            hidden = [] if table is not None else _hidden_label_tables(conn)
            if not tables and not hidden:
                raise TableError(
                    "no table with sensor_id, timestamp and labels (anomaly_flag, or fault); "
                    "readings written with hidden labels are scored against the labels file"
                )
            for name in hidden:
                found(_with_hidden_labels(conn, path, name, channels))
            for name in tables:
                declared = table_columns(conn, name)
                wanted = _wanted(channels)
                if channels:
                    wanted += [
                        c for c, kind in declared
                        if kind == "REAL" and c not in NOT_CHANNELS and c not in wanted
                    ]  # fmt: skip
                label = f"{path} (table {name})"
                for chunk in sqlite_chunks(conn, name, wanted, label, _sparse_labels(declared)):
                    _check(chunk)
                    found(chunk)
        except sqlite3.Error as exc:
            raise TableError(f"cannot read the database ({exc})") from None


def _hidden_label_tables(conn: sqlite3.Connection) -> list[str]:
    """Equipment tables whose labels went to a truth file (``labels.mode: hidden``)."""
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%\\_readings' "
            "ESCAPE '\\' ORDER BY name"
        )
    ]
    hidden = []
    for name in names:
        columns = [c for c, _ in table_columns(conn, name)]
        if set(KEYS) <= set(columns) and not _labelled(columns):
            hidden.append(name)
    return hidden


def _with_hidden_labels(
    conn: sqlite3.Connection, path: Path, table: str, channels: bool
) -> Columns:
    """A node table's readings with the labels from its truth file (``NAME.truth.db``
    beside it, the node's default), matched row for row: the truth file keys each label
    by the node file's database id and the reading's row id."""
    type_name = table.removesuffix("_readings")
    truth_path = path.with_name(f"{path.stem}.truth.db")
    if not truth_path.is_file():
        raise TableError(
            f"table {table} holds readings whose labels are hidden, and there is no truth "
            f"file {truth_path} beside it; pass the truth file as --truth, or name another "
            "table as FILE?table=NAME"
        )
    declared = table_columns(conn, table)
    wanted = [*KEYS, *GROUPS]
    if channels:
        wanted += [c for c, kind in declared if kind == "REAL" and c not in NOT_CHANNELS]
    chunks = list(sqlite_chunks(conn, table, wanted, f"{path} (table {table})"))
    readings = {c: concat([chunk.values[c] for chunk in chunks]) for c in chunks[0].values}
    rows = sum(chunk.rows for chunk in chunks)
    database = store.database_id(conn)
    with closing(open_readonly(truth_path)) as labels_conn:
        names = [c for c, _ in table_columns(labels_conn, f"{type_name}_truth")]
        present = [c for c in (*KEYS, *EQUIPMENT_LABELS) if c in names]
        if not {"fault", "reading_id", "database_id"} <= set(names):
            raise TableError(f"{truth_path}: no {type_name}_truth table with the labels")
        listed = ", ".join(f'"{c}"' for c in present)
        cursor = labels_conn.execute(
            f'SELECT {listed} FROM "{type_name}_truth" WHERE database_id = ? ORDER BY reading_id',
            (database,),
        )
        labels = read_rows(cursor, present, names, f"{truth_path} (table {type_name}_truth)")
    same = labels.rows == rows and all(
        np.array_equal(labels.values[k].strings(), readings[k].strings()) for k in KEYS
    )
    if not same:
        raise TableError(
            f"table {table}: its {rows:,} readings and the {labels.rows:,} labels in "
            f"{truth_path} do not pair up row for row (rows deleted from one of them?)"
        )
    values = {**readings, **{c: v for c, v in labels.values.items() if c not in KEYS}}
    return Columns(labels.label, rows, values, tuple(dict.fromkeys([*names, *readings])))


def _sparse_labels(declared: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The classic labels are read only from flagged rows (a few percent of them)."""
    if "anomaly_flag" not in {name for name, _ in declared}:
        return {}
    flagged = '"anomaly_flag" != 0'
    return {"anomaly_flag": flagged, "anomaly_type": flagged}


def _label_tables(conn: sqlite3.Connection) -> list[str]:
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return [n for n in names if _labelled([c for c, _ in table_columns(conn, n)])]


def _check(columns: Columns) -> None:
    missing = [k for k in KEYS if k not in columns.names]
    if missing or not _labelled(columns.names):
        raise TableError(
            f"{'missing column ' + ', '.join(missing) + '; ' if missing else ''}"
            "expected sensor_id, timestamp and labels: anomaly_flag (with anomaly_type) "
            "for the classic sensor, or fault (with rul_seconds) for an equipment model"
        )


def _from_postgres(url: str, channels: bool) -> tuple[list[Columns], list[str]]:
    _, table = postgres.split_url(url)
    label = redact(url)
    try:
        conn = postgres.open_postgres(url)
    except ValueError as exc:
        return [], [f"--truth {label}: {exc}"]
    try:
        names = [
            str(row[0])
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            )
        ]
        if not _labelled(names):
            return [], [
                f"--truth {label}: table {table!r} lacks sensor_id, timestamp or labels "
                "(anomaly_flag, or fault)"
            ]
        present = [c for c in _wanted(channels) if c in names]
        listed = ", ".join(
            f'to_char("{c}" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
            if c == "timestamp"
            else f'"{c}"'
            for c in present
        )
        with conn.cursor(name="sensorfleet_score") as cursor:
            cursor.execute(f'SELECT {listed} FROM "{table}"')
            return [read_rows(cursor, present, names, f"{label} (table {table})")], []
    except Exception as exc:  # psycopg.Error; psycopg is optional, so not imported here
        return [], [f"--truth {label}: cannot read ({str(exc).strip().splitlines()[0]})"]
    finally:
        conn.close()


class _Decoded:
    """The parts of a truth decoded as they arrive, in order, into shared label codes. The
    first value that does not decode is kept as an error, reported once every file has
    been read (a file that cannot be read at all is reported first)."""

    def __init__(self) -> None:
        self.sensors: dict[str, int] = {}
        self.kinds: dict[str, int] = {NORMAL: 0}
        self.models: dict[str, int] = {}
        self.firmwares: dict[str, int] = {}
        self.pieces: list[dict[str, np.ndarray]] = []
        self.parts = 0
        self.scheme = "anomaly_type"
        self.error: InputError | None = None

    def add(self, part: Columns) -> None:
        self.parts += 1
        if self.error is not None:
            return
        try:
            piece = _decode(part, self.sensors, self.kinds, self.models, self.firmwares)
        except ColumnError as exc:
            self.error = InputError([f"--truth {part.label}: row {exc.row + 1}: {exc}"])
            return
        if "fault" in part.values:
            self.scheme = "fault"
        self.pieces.append(piece)

    def combine(self, source: str) -> Truth:
        pieces = self.pieces
        channel_names: list[str] = []
        for piece in pieces:
            channel_names += [
                c for c in piece if c.startswith("channel:") and c not in channel_names
            ]
        joined = {
            key: np.concatenate([p[key] for p in pieces])
            for key in ("sensor", "time", "anomaly", "kind", "model", "firmware", "rul")
        }
        order = _by_sensor_then_time(joined["sensor"], joined["time"])
        values = {}
        for name in channel_names:
            filled = [p.get(name, np.full(len(p["time"]), np.nan)) for p in pieces]
            values[name.removeprefix("channel:")] = np.concatenate(filled)[order]
        return Truth(
            source=source,
            sensors=list(self.sensors),
            sensor=joined["sensor"][order],
            time=joined["time"][order],
            anomaly=joined["anomaly"][order],
            kinds=list(self.kinds),
            kind=joined["kind"][order],
            models=list(self.models),
            model=joined["model"][order],
            firmwares=list(self.firmwares),
            firmware=joined["firmware"][order],
            rul=joined["rul"][order],
            channels=values,
            scheme=self.scheme,
        )


def _by_sensor_then_time(sensor: Codes, time: Ints) -> Ints:
    """The order that sorts readings by sensor, then time.

    A node writes each sensor's readings in time order, interleaved with the
    other sensors'; a stable sort on the sensor alone (a radix sort for small
    codes) then suffices, which is checked before it is trusted.
    """
    small = sensor.astype(np.int16) if len(sensor) and sensor.max() < 2**15 else sensor
    order = np.argsort(small, kind="stable")
    ordered, times = sensor[order], time[order]
    if (np.diff(times)[ordered[1:] == ordered[:-1]] >= 0).all():
        return order
    return np.lexsort((time, sensor))


def _decode(
    part: Columns,
    sensors: dict[str, int],
    kinds: dict[str, int],
    models: dict[str, int],
    firmwares: dict[str, int],
) -> dict[str, np.ndarray]:
    v = part.values
    n = part.rows
    sensor, _ = to_codes(v["sensor_id"], sensors)
    time = to_micros(v["timestamp"])
    if "fault" in v:
        anomaly, kind = _faults(v["fault"], kinds, n)
        if "instrument_fault" in v:  # a wrong reading is an anomaly too, named after its fault
            broken, instrument = _faults(v["instrument_fault"], kinds, n)
            kind = np.where(anomaly, kind, instrument)
            anomaly |= broken
    else:
        anomaly, _ = to_flags(v["anomaly_flag"])
        if "anomaly_type" in v:
            typed, labels = to_codes(v["anomaly_type"], {})
            mapping = np.zeros(max(len(labels), 1), dtype=np.int32)
            for code in np.unique(typed[anomaly]):  # only the types flagged rows carry
                mapping[code] = kinds.setdefault(labels[code] or UNLABELLED, len(kinds))
            kind = np.where(anomaly, mapping[typed] if len(labels) else 0, 0).astype(np.int32)
        else:
            kind = np.where(anomaly, kinds.setdefault(UNLABELLED, len(kinds)), 0).astype(np.int32)
    piece: dict[str, np.ndarray] = {
        "sensor": sensor,
        "time": time,
        "anomaly": anomaly,
        "kind": kind,
        "model": _group(v, "model", models, n),
        "firmware": _group(v, "firmware_version", firmwares, n),
        "rul": to_floats(v["rul_seconds"], "seconds") if "rul_seconds" in v else np.full(n, np.nan),
    }
    for name, column in v.items():
        if name not in (*KEYS, *CLASSIC_LABELS, *EQUIPMENT_LABELS, *GROUPS):
            piece[f"channel:{name}"] = to_floats(column)
    return piece


def _faults(column: TextColumn, kinds: dict[str, int], n: int) -> tuple[Bools, Codes]:
    """Which readings have a fault (not NULL, empty, none or normal), and its kind."""
    fault, labels = to_codes(column, {})
    if not labels:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int32)
    healthy = np.array([t.strip().lower() in ("", "none", "normal") for t in labels])
    names = [NORMAL if h else t for t, h in zip(labels, healthy, strict=True)]
    mapping = np.array([kinds.setdefault(t, len(kinds)) for t in names], dtype=np.int32)
    return ~healthy[fault], mapping[fault]


def _group(values: dict[str, TextColumn], name: str, table: dict[str, int], n: int) -> Codes:
    column = values.get(name)
    if column is None:
        return np.full(n, table.setdefault("(unknown)", len(table)), dtype=np.int32)
    codes, labels = to_codes(column, {})
    mapping = np.array([table.setdefault(t or "(unknown)", len(table)) for t in labels], np.int32)
    return mapping[codes] if len(labels) else np.zeros(0, np.int32)
