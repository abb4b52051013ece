"""Sensor leases: one live writer per sensor id and file; dead holders are taken over."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import log_events, query, run_main
from nodeproc import count_rows, start_node, wait_until

from sensorfleet.node.config import Database
from sensorfleet.node.lease import (
    HOLDERS,
    LEASE_TIMEOUT_SECONDS,
    LEASES,
    FileLease,
    Holder,
    LeaseConflictError,
)
from sensorfleet.node.store import Store


def test_second_live_node_with_the_same_id_exits_2(tmp_path: Path) -> None:
    """A second node writing the same sensor id into the same file is refused, naming both."""
    db = tmp_path / "data.db"
    with start_node(tmp_path) as first:
        started = time.monotonic()
        second = run_main(["--config", "config.yaml", "--identity", "node_identity.json"], tmp_path)
        waited = time.monotonic() - started
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"error: {db}: sensor id 'T1' is already being written by a live node" in (
            second.stderr
        )
        assert "Traceback" not in second.stderr
        assert waited < LEASE_TIMEOUT_SECONDS + 10
        assert first.stop() == 0
    stamps = [r[0] for r in query(db, "SELECT timestamp FROM sensor_readings")]
    assert len(stamps) == len(set(stamps)) == first.summary()["rows_written"]


def test_killed_holder_is_taken_over_and_clean_exit_releases(tmp_path: Path) -> None:
    """After SIGKILL a restart takes the lease at once; after SIGTERM no lease is left."""
    db = tmp_path / "data.db"
    with start_node(tmp_path) as first:
        first.kill()
    before = count_rows(db)
    with start_node(tmp_path, wait_rows=False) as second:
        second.wait_for("stale sensor lease taken over")
        wait_until(lambda: count_rows(db) > before, what="rows from the second node")
        assert second.stop() == 0
    assert query(db, f"SELECT count(*) FROM {LEASES}") == [(0,)]
    assert query(db, f"SELECT count(*) FROM {HOLDERS}") == [(0,)]


def _other_host(name: str) -> Holder:
    return Holder(holder=name, host=f"host-{name}", pid=1, pid_namespace=1)


def test_holder_that_stopped_heartbeating_is_taken_over_after_the_timeout(
    tmp_path: Path,
) -> None:
    """A holder on another host whose heartbeat is older than the timeout loses its lease."""
    path = tmp_path / "data.db"
    start = 1_000_000.0
    first = Store(path, Database())
    first.lease = FileLease(path, ["S1"], _other_host("a"), clock=lambda: start)
    first.open()
    second = Store(path, Database())
    later = start + LEASE_TIMEOUT_SECONDS + 1
    second.lease = FileLease(path, ["S1", "S2"], _other_host("b"), clock=lambda: later)
    second.open()
    holders = query(path, f"SELECT sensor_id, holder FROM {LEASES} ORDER BY sensor_id")
    assert holders == [("S1", "b"), ("S2", "b")]
    first.close()
    second.finish()


def test_holder_that_keeps_heartbeating_is_a_conflict(tmp_path: Path) -> None:
    """A holder whose heartbeat advances while the newcomer waits means a live duplicate."""
    path = tmp_path / "data.db"
    first = Store(path, Database())
    first.lease = FileLease(path, ["S1"], _other_host("a"))
    first.open()
    stop = threading.Event()

    def keep_beating() -> None:  # the first holder, alive on another host
        with sqlite3.connect(path) as conn:
            while not stop.wait(0.2):
                conn.execute(f"UPDATE {HOLDERS} SET heartbeat = ?", (time.time(),))
                conn.commit()

    beater = threading.Thread(target=keep_beating, daemon=True)
    beater.start()
    second = Store(path, Database())
    second.lease = FileLease(path, ["S1"], _other_host("b"))
    try:
        with pytest.raises(LeaseConflictError, match=f"{path}: sensor id 'S1'"):
            second.open()
    finally:
        stop.set()
        beater.join()
    first.finish()


def test_different_ids_share_one_file(tmp_path: Path) -> None:
    """Leases are per sensor id: two nodes with different ids write one file together."""
    (tmp_path / "b").mkdir()
    with start_node(tmp_path, {"database": {"path": str(tmp_path / "shared.db")}}, wait_rows=False):
        result = run_main(
            ["--config", "config.yaml", "--identity", "node_identity.json", "--run-time", "1"],
            tmp_path,
            env={"SENSOR_ID": "T2"},
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not log_events(result.stderr, "sensor lease held, waiting")
