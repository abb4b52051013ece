"""Table layouts: one description of a readings table renders its DDL, INSERT and fields."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sensorfleet.errors import InputError
from sensorfleet.node.layout import (
    CLASSIC,
    LABEL_COLUMNS,
    ChannelColumn,
    equipment_layout,
    table_of,
)
from sensorfleet.sync.sinks.base import CENTRAL_COLUMNS

CHANNELS = (ChannelColumn("power_kw", "kW"), ChannelColumn("discharge_pressure", "bar"))


def _table_columns(db: Path, table: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
    return [(name, kind, notnull) for _, name, kind, notnull, _, _ in rows]


def test_equipment_table_has_one_column_per_channel(tmp_path: Path) -> None:
    """A model's table holds time and sensor id, one REAL column per channel, the labels,
    the identity fields and ``synced``, in that order, so plain SQL reads it."""
    layout = equipment_layout("compressor", CHANNELS)
    db = tmp_path / "node.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(layout.node_schema_sql())
        conn.execute(
            layout.insert_sql(),
            ("2026-01-01T00:00:00.000000Z", "C1", 7.5, 6.1, "loaded", None, None, None, None,
             1.0, None, 0, "2.0", "GA-30", "Atlas", "Hall 1"),
        )  # fmt: skip
        found = conn.execute(
            "SELECT avg(power_kw) FROM compressor_readings WHERE state = 'loaded'"
        ).fetchone()
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(compressor_readings)")}
    assert found == (7.5,)
    assert layout.table == "compressor_readings" == table_of("compressor")
    assert [name for name, _, _ in _table_columns(db, layout.table)] == [
        "id", "timestamp", "sensor_id", "power_kw", "discharge_pressure", "state", "fault",
        "fault_severity", "fault_started_at", "instrument_fault", "health", "rul_seconds",
        "maintenance",
        "firmware_version", "model", "manufacturer", "location", "synced",
    ]  # fmt: skip
    assert ("power_kw", "REAL", 0) in _table_columns(db, layout.table)
    assert layout.column("power_kw").unit == "kW"
    assert "idx_compressor_readings_unsynced" in indexes


def test_hidden_labels_leave_the_label_columns_out() -> None:
    """With labels hidden, the table has no ground-truth column at all."""
    layout = equipment_layout("compressor", CHANNELS, labels_inline=False)
    assert not set(layout.names) & {column.name for column in LABEL_COLUMNS}
    assert layout.with_role("label") == ()


@pytest.mark.parametrize("channel", ["state", "synced", "Power", "power kw", "1st"])
def test_channel_names_that_are_not_plain_columns_are_refused(channel: str) -> None:
    """A channel that collides with a fixed column or is not a plain lowercase identifier
    is an input error naming the type and the channel."""
    with pytest.raises(InputError) as caught:
        equipment_layout("compressor", [ChannelColumn(channel, "bar")])
    assert caught.value.problems == [
        f"equipment type 'compressor': channel {channel!r}: expected lowercase letters, "
        "digits and _, and none of database_id, fault, fault_severity, fault_started_at, "
        "firmware_version, health, id, instrument_fault, location, maintenance, manufacturer, "
        "model, received_at, rul_seconds, sensor_id, source_row_id, state, synced, table, "
        "timestamp, type"
    ]


def test_classic_layout_feeds_the_sink_records() -> None:
    """The central record's fields are the key, the classic layout's columns, received_at."""
    assert ("database_id", "source_row_id", *CLASSIC.names, "received_at") == CENTRAL_COLUMNS
    assert [column.unit for column in CLASSIC.channels] == ["°C", "mm/s²", "V"]
