"""The node loop in-process, on a controlled clock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sensorfleet.clock import ManualClock
from sensorfleet.config import build_config
from sensorfleet.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node import NodeLoop, build_sensors

START = 1_800_000_000.0


class StallingClock(ManualClock):
    """A clock whose process 'freezes' once: the next look at the time is 30 s later."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.stalled = False

    def now(self) -> float:
        if not self.stalled and self.current > START + 2:
            self.stalled = True
            self.current += 30
        return self.current

    def wait_until(self, instant: float, stop: threading.Event) -> bool:
        return super().wait_until(instant, stop)


def test_catching_up_after_a_stall_drops_nothing(tmp_path: Path) -> None:
    """After a 30 s stall, 3,000 overdue readings are written in batches, none dropped."""
    config = build_config(
        {
            "simulation": {"readings_per_second": 100},
            "database": {
                "path": str(tmp_path / "n.db"),
                "batch_size": 200,
                "max_buffered_rows": 500,
            },
        },
        "test",
    )
    sensors = build_sensors(config, [(None, build_identity(DEFAULT_IDENTITY, "t", {}))], 1, START)
    loop = NodeLoop(config, sensors, StallingClock(START))
    loop.live(START + 40)
    summary = loop.close()
    assert summary.rows_dropped == 0
    assert summary.rows_written == 4000
    with sqlite3.connect(tmp_path / "n.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0] == 4000
