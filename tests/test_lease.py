"""Sensor leases: one live writer per sensor id and file; dead holders are taken over."""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import log_events, query, run_main
from nodeproc import (
    FAST_DATABASE,
    NodeProcess,
    count_rows,
    rows,
    start_node,
    wait_until,
    write_config,
    write_identity,
)

from sensorfleet.node.clock import format_instant
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


def test_a_silent_holder_whose_heartbeat_lies_ahead_ends_the_wait_with_exit_2(
    tmp_path: Path,
) -> None:
    """A lease whose holder (another host, its clock an hour ahead) no longer heartbeats
    makes a new node exit 2 after one lease timeout, naming the holder and its heartbeat;
    before, the heartbeat's age stayed negative and the node waited for the hour."""
    db = tmp_path / "data.db"
    ahead = time.time() + 3600
    holder = Store(db, Database())
    holder.lease = FileLease(db, ["S1"], _other_host("a"), clock=lambda: ahead)
    holder.open()
    holder.close()  # gone without giving the lease back
    write_config(tmp_path / "config.yaml", database={"path": "data.db"})
    write_identity(tmp_path / "node_identity.json", id="S1")
    result = run_main(["--backfill", "10s"], tmp_path, timeout=LEASE_TIMEOUT_SECONDS + 100)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    found = re.match(
        rf"error: {re.escape(str(db))}: sensor id 'S1' is leased by host host-a, pid 1, whose "
        rf"heartbeat {re.escape(format_instant(ahead))} is (\d+) s ahead of this host's clock",
        errors[0],
    )
    assert found and 3000 < int(found[1]) <= 3600, errors[0]
    assert query(db, "SELECT count(*) FROM sensor_readings") == [(0,)]
    # The remedy the line gives, for a holder that is gone, lets the node start.
    remove = errors[0].split('"')[-2]
    assert remove == f"DELETE FROM {HOLDERS} WHERE host = 'host-a' AND pid = 1"
    with sqlite3.connect(db) as conn:
        conn.execute(remove)
    assert run_main(["--backfill", "10s"], tmp_path).returncode == 0
    assert query(db, "SELECT count(*) FROM sensor_readings") == [(10,)]


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


def _node_writing(
    folder: Path, db: Path, location: str, sensor_ids: list[str], **config: Any
) -> NodeProcess:
    """A node in ``folder`` writing ``sensor_ids`` (rows labelled ``location``) into ``db``."""
    folder.mkdir()
    write_config(
        folder / "config.yaml",
        simulation={"readings_per_second": 20, "seed": 1},
        anomalies={"enabled": False},
        database={**FAST_DATABASE, "path": str(db)},
        **config,
    )
    (folder / "ids").mkdir()
    for sensor_id in sensor_ids:
        write_identity(folder / "ids" / f"{sensor_id}.json", id=sensor_id, location=location)
    return NodeProcess(["--config", "config.yaml", "--identity", "ids"], folder)


def _rows_of(db: Path, sensor_id: str, location: str) -> list[str]:
    """Timestamps of one sensor's rows written with ``location`` (none before the file exists)."""
    if not count_rows(db):
        return []
    where = f"sensor_id = '{sensor_id}' AND location = '{location}'"
    return sorted(r[0] for r in rows(db, "timestamp", where))


@pytest.mark.parametrize("others", [[], ["S3"]], ids=["only-sensor", "with-another-sensor"])
def test_node_resumed_after_its_lease_was_taken_over_stops_writing_that_id(
    tmp_path: Path, others: list[str]
) -> None:
    """SIGSTOP a node, let another take its id, SIGCONT it: it never writes that id again."""
    db = tmp_path / "shared.db"
    with _node_writing(tmp_path / "a", db, "A", ["S1", *others]) as first:
        wait_until(lambda: len(_rows_of(db, "S1", "A")) > 0, what="rows from the first node")
        first.proc.send_signal(signal.SIGSTOP)
        try:
            with _node_writing(tmp_path / "b", db, "B", ["S1"]) as second:
                second.wait_for("stale sensor lease taken over", timeout=LEASE_TIMEOUT_SECONDS + 20)
                wait_until(lambda: len(_rows_of(db, "S1", "B")) > 0, what="rows from the second")
                taken_at = _rows_of(db, "S1", "B")[0]
                first.proc.send_signal(signal.SIGCONT)
                dropped = first.wait_for("sensor dropped, lease taken over")
                if others:
                    # The other sensor goes on being written by the resumed node.
                    before = len(_rows_of(db, "S3", "A"))
                    wait_until(lambda: len(_rows_of(db, "S3", "A")) > before + 20, what="S3 rows")
                    assert first.stop() == 0
                else:
                    assert first.wait(30) == 2, first.stderr[-3000:]
                wait_until(lambda: len(_rows_of(db, "S1", "B")) > 40, what="more rows from B")
                assert second.stop() == 0
        finally:
            first.proc.send_signal(signal.SIGCONT)
    assert dropped["sensor_id"] == "S1" and "taken over by another node" in dropped["problem"]
    assert dropped["sensors_left"] == len(others)
    # Not one row of S1 from the resumed node once the other node wrote it: one writer per id.
    assert [t for t in _rows_of(db, "S1", "A") if t >= taken_at] == []
    leases = query(db, f"SELECT count(*) FROM {LEASES}")
    assert leases == [(0,)]  # both exits gave their leases back


def test_identity_edit_to_an_id_another_live_node_writes_is_rejected(tmp_path: Path) -> None:
    """Editing a running node's id to one a live node writes is rejected, naming the holder;
    an edit to a free id takes its lease first and gives the old one back."""
    db = tmp_path / "shared.db"
    reload = {"config_reload": {"enabled": True, "check_interval_seconds": 60}}
    with (
        _node_writing(tmp_path / "a", db, "A", ["S1"]) as first,
        _node_writing(tmp_path / "c", db, "C", ["S2"], **reload) as other,
    ):
        wait_until(lambda: _rows_of(db, "S1", "A") and _rows_of(db, "S2", "C"), what="rows")
        identity = tmp_path / "c" / "ids" / "S2.json"
        write_identity(identity.with_name("edit.tmp"), id="S1", location="C")
        (identity.with_name("edit.tmp")).replace(identity)
        rejected = other.wait_for("config reload rejected")
        before = len(_rows_of(db, "S2", "C"))
        wait_until(lambda: len(_rows_of(db, "S2", "C")) > before + 20, what="S2 rows go on")
        holders = dict(query(db, f"SELECT holder, pid FROM {HOLDERS}"))
        leases = {s: holders[h] for s, h in query(db, f"SELECT sensor_id, holder FROM {LEASES}")}
        assert leases == {"S1": first.proc.pid, "S2": other.proc.pid}
        # An edit to a free id is applied, with the lease taken before its first row.
        write_identity(identity.with_name("edit.tmp"), id="S3", location="C")
        (identity.with_name("edit.tmp")).replace(identity)
        other.wait_for("identity reloaded", lambda e: e["sensor_id"] == "S3")
        wait_until(lambda: _rows_of(db, "S3", "C"), what="S3 rows")
        holders = dict(query(db, f"SELECT holder, pid FROM {HOLDERS}"))
        leases = {s: holders[h] for s, h in query(db, f"SELECT sensor_id, holder FROM {LEASES}")}
        assert leases == {"S1": first.proc.pid, "S3": other.proc.pid}
        assert other.stop() == 0 and first.stop() == 0
    assert "sensor id 'S1' is already being written by a live node" in rejected["problem"]
    assert f"pid {first.proc.pid}" in rejected["problem"]
    assert rejected["action"] == "keeping the last good settings"
    assert _rows_of(db, "S1", "C") == []  # never a second writer of S1


def test_node_resumed_after_a_stall_keeps_ids_nobody_took(tmp_path: Path) -> None:
    """A stalled node judged dead by a node writing another id takes its own id back on
    waking and goes on writing it: only an id another node took is given up."""
    db = tmp_path / "shared.db"
    with _node_writing(tmp_path / "a", db, "A", ["S1"]) as first:
        wait_until(lambda: _rows_of(db, "S1", "A"), what="rows from the first node")
        first.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(LEASE_TIMEOUT_SECONDS + 1)  # the holder's heartbeat grows stale
            with _node_writing(tmp_path / "b", db, "B", ["S2"]) as second:
                second.wait_for("stale sensor lease taken over")
                first.proc.send_signal(signal.SIGCONT)
                renewed = first.wait_for("sensor lease renewed after a stall")
                before = len(_rows_of(db, "S1", "A"))
                wait_until(lambda: len(_rows_of(db, "S1", "A")) > before + 20, what="S1 rows")
                holders = dict(query(db, f"SELECT holder, pid FROM {HOLDERS}"))
                leases = {
                    s: holders[h] for s, h in query(db, f"SELECT sensor_id, holder FROM {LEASES}")
                }
                assert leases == {"S1": first.proc.pid, "S2": second.proc.pid}
                assert second.stop() == 0 and first.stop() == 0
        finally:
            first.proc.send_signal(signal.SIGCONT)
    assert renewed["sensor_ids"] == ["S1"] and not first.named("sensor dropped, lease taken over")
