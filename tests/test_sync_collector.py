"""The collector loop on real node files and sinks: exactly once, nothing lost, nothing stuck."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import servers
from servers import Receiver, make_node_db, node_rows, sqlite_rows, start_node, stop_process

from sensorfleet.errors import SensorfleetError
from sensorfleet.node.clock import ManualClock, parse_instant
from sensorfleet.node.readings import COLUMNS
from sensorfleet.sync.collector import Collector, SyncOptions, SyncSummary
from sensorfleet.sync.cursor import CursorStore
from sensorfleet.sync.sink_url import parse_sink_url
from sensorfleet.sync.sinks.base import Batch
from sensorfleet.sync.sinks.files import FilesSink
from sensorfleet.sync.sinks.sqlite import SQLiteSink
from sensorfleet.sync.source import NodeDatabase

http_receiver = servers.http_receiver

FAST = SyncOptions(batch_size=250, interval=0.05, log_interval=60)
ONCE = SyncOptions(batch_size=250, interval=0.05, log_interval=60, once=True)


def central_rows(db: Path) -> list[tuple[object, ...]]:
    cols = ", ".join(COLUMNS)
    sql = f"SELECT database_id, source_row_id, {cols} FROM sensor_readings ORDER BY 1, 2"
    return sqlite_rows(db, sql)


def unsynced(db: Path) -> int:
    return int(sqlite_rows(db, "SELECT count(*) FROM sensor_readings WHERE synced = 0")[0][0])


def newest(db: Path) -> int:
    return int(sqlite_rows(db, "SELECT coalesce(max(id), 0) FROM sensor_readings")[0][0])


def collect(sources: list[Path], central: Path, options: SyncOptions = ONCE) -> SyncSummary:
    return Collector(sources, SQLiteSink(central), options).run()


class Following:
    """A collector running in follow mode on a thread, stopped on exit."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.thread = threading.Thread(target=collector.run, daemon=True)

    def __enter__(self) -> Following:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.collector.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("tpl")
    return [make_node_db(folder / f"n{i}.db", seed=i, backfill="10m") for i in range(3)]


@pytest.fixture
def nodes(templates: list[Path], tmp_path: Path) -> list[Path]:
    folder = tmp_path / "data"
    folder.mkdir()
    return [Path(shutil.copy(t, folder / t.name)) for t in templates]


def test_drains_every_source_exactly_once(nodes: list[Path], tmp_path: Path) -> None:
    """--once ships every row of every node file once and leaves every row synced = 1."""
    central = tmp_path / "central.db"
    summary = collect([nodes[0].parent], central)
    expected = sorted(row for db in nodes for row in node_rows(db))
    assert central_rows(central) == expected
    assert [unsynced(db) for db in nodes] == [0, 0, 0]
    assert summary.rows_shipped == summary.rows_stored == len(expected) == 1800
    assert summary.failed_sources == []


def test_crash_between_sink_write_and_mark_leaves_no_duplicate(
    nodes: list[Path], tmp_path: Path
) -> None:
    """A batch stored centrally but never marked (a crash) is sent again and stored once."""
    central = tmp_path / "central.db"
    source = NodeDatabase(nodes[0], ONCE.database)
    database_id = source.open()
    crashed = Batch(database_id, str(nodes[0]), source.read_unsynced(300), "2026-01-01T00:00:00Z")
    sink = SQLiteSink(central)
    sink.open()
    sink.write(crashed)  # ... and the collector died before marking
    sink.close()
    source.close()
    summary = collect([nodes[0]], central)
    assert central_rows(central) == sorted(node_rows(nodes[0]))
    assert summary.rows_shipped == 600 and summary.rows_stored == 300
    assert unsynced(nodes[0]) == 0


def test_unreachable_sink_marks_nothing_then_recovers(
    nodes: list[Path], http_receiver: Receiver
) -> None:
    """While the sink fails nothing is marked; once it answers again every row is shipped."""
    http_receiver.fail_next = 10**9
    sink = parse_sink_url(http_receiver.url, timeout=2)
    collector = Collector([nodes[0]], sink, FAST)
    with Following(collector):
        eventually(lambda: collector.summary.sink_errors >= 2)
        assert unsynced(nodes[0]) == 600 and http_receiver.rows() == []
        http_receiver.fail_next = 0
        eventually(lambda: unsynced(nodes[0]) == 0)
    keys = {(r["database_id"], r["source_row_id"]) for r in http_receiver.rows()}
    assert keys == {(row[0], row[1]) for row in node_rows(nodes[0])}


def test_once_gives_up_on_a_sink_that_keeps_failing(
    nodes: list[Path], http_receiver: Receiver
) -> None:
    """--once ends with an error after repeated sink failures, and no row is marked."""
    http_receiver.fail_next = 10**9
    sink = parse_sink_url(http_receiver.url, timeout=2)
    options = SyncOptions(batch_size=250, once=True, max_failures=2)
    with pytest.raises(SensorfleetError, match="giving up after 2 failed attempts"):
        Collector([nodes[0]], sink, options).run()
    assert unsynced(nodes[0]) == 600


def test_once_ships_after_sink_backoffs_on_manual_clocks(
    nodes: list[Path], http_receiver: Receiver
) -> None:
    """On manual clocks a sink refusing three batches is retried after 0.5, 1 and 2 s of
    simulated time, with no real sleep, and the rows are dated by the wall clock given."""
    http_receiver.fail_next = 3
    http_receiver.fail_status = 400  # refused outright: no retry (and sleep) inside the sink
    sink = parse_sink_url(http_receiver.url, timeout=2)
    wall = ManualClock(parse_instant("2026-01-05T12:00:00Z"))
    collector = Collector([nodes[0]], sink, ONCE, clock=wall, monotonic=ManualClock(0.0))
    started = time.monotonic()
    summary = collector.run()
    assert time.monotonic() - started < 3.5
    assert summary.sink_errors == 3 and summary.seconds == 0.5 + 1 + 2
    assert summary.rows_shipped == 600 and unsynced(nodes[0]) == 0
    assert {row["received_at"] for row in http_receiver.rows()} == {"2026-01-05T12:00:00.000000Z"}


def test_cursor_mode_never_writes_node_files(nodes: list[Path], tmp_path: Path) -> None:
    """With a cursor the node file keeps synced = 0 and a second run ships only newer rows."""
    central, cursor_file = tmp_path / "central.db", tmp_path / "cursor.json"
    before = nodes[0].read_bytes()
    first = Collector([nodes[0]], SQLiteSink(central), ONCE, CursorStore(cursor_file)).run()
    assert nodes[0].read_bytes() == before
    assert first.rows_shipped == 600
    make_node_db(nodes[0], seed=9, backfill="1m")  # the node writes 60 more rows
    second = Collector([nodes[0]], SQLiteSink(central), ONCE, CursorStore(cursor_file)).run()
    assert second.rows_shipped == 60
    assert central_rows(central) == sorted(node_rows(nodes[0]))
    assert unsynced(nodes[0]) == 660
    database_id = node_rows(nodes[0])[0][0]
    assert CursorStore(cursor_file).get(database_id) == 660


def test_a_failing_source_does_not_stop_the_others(nodes: list[Path], tmp_path: Path) -> None:
    """A corrupt file is reported and given up on while every healthy file is drained."""
    broken = nodes[0].parent / "broken.db"
    broken.write_bytes(b"not a database at all" * 500)
    central = tmp_path / "central.db"
    options = SyncOptions(batch_size=250, once=True, max_failures=2)
    summary = collect([broken, nodes[1], nodes[2]], central, options)
    assert [unsynced(nodes[1]), unsynced(nodes[2])] == [0, 0]
    assert len(central_rows(central)) == 1200
    assert len(summary.failed_sources) == 1 and "broken.db" in summary.failed_sources[0]


def test_once_stops_at_rows_present_when_it_started(tmp_path: Path) -> None:
    """--once finishes even while a node keeps writing, shipping at least what was there."""
    db = make_node_db(tmp_path / "live.db", seed=4, backfill="20m")
    node = start_node(db, seed=4, rate=500)
    try:
        eventually(lambda: newest(db) > 1200)  # the node is writing live
        summary = collect([db], tmp_path / "central.db", SyncOptions(batch_size=100, once=True))
        # Rows the node writes after the drain are left for the next run.
        eventually(lambda: unsynced(db) > 0)
    finally:
        stop_process(node)
    assert summary.rows_shipped > 1200
    assert summary.failed_sources == []


def test_following_a_folder_picks_up_new_and_recreated_files(
    templates: list[Path], tmp_path: Path
) -> None:
    """New files in a followed folder are shipped, recreated ones too, and removed ones dropped."""
    folder, central = tmp_path / "data", tmp_path / "central.db"
    folder.mkdir()
    (folder / "notes.txt").write_text("ignored")
    shutil.copy(templates[0], folder / "a.db")
    collector = Collector([folder], SQLiteSink(central), FAST)

    def count() -> int:
        try:
            return len(central_rows(central))
        except sqlite3.OperationalError:  # the sink has not created its table yet
            return 0

    with Following(collector):
        eventually(lambda: count() == 600)
        shutil.copy(templates[1], folder / "b.db")
        eventually(lambda: count() == 1200)
        (folder / "a.db").rename(tmp_path / "a-old.db")
        make_node_db(folder / "a.db", seed=11, backfill="2m")
        eventually(lambda: count() == 1320)
        (folder / "b.db").unlink()
        eventually(lambda: [p.name for p in collector.sources] == ["a.db"])
    assert unsynced(folder / "a.db") == 0
    ids = {row[0] for row in central_rows(central)}
    assert len(ids) == 3


@pytest.fixture
def foreign_sqlite(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data" / "other.db"
    path.parent.mkdir(exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    yield path


def test_folder_files_that_are_not_node_databases_are_skipped(
    foreign_sqlite: Path, templates: list[Path], tmp_path: Path
) -> None:
    """A SQLite file without the node tables in a followed folder is skipped, not a failure."""
    shutil.copy(templates[2], foreign_sqlite.parent / "n.db")
    summary = collect([foreign_sqlite.parent], tmp_path / "central.db")
    assert summary.failed_sources == [] and summary.rows_shipped == 600
    assert sqlite_rows(foreign_sqlite, "SELECT count(*) FROM sqlite_master") == [(1,)]


def test_an_idle_follower_waits_between_polls(nodes: list[Path], tmp_path: Path) -> None:
    """With every source drained, the follower sleeps --interval instead of spinning."""
    collector = Collector(
        [nodes[0]], SQLiteSink(tmp_path / "central.db"), SyncOptions(interval=0.5)
    )
    with Following(collector):
        eventually(lambda: unsynced(nodes[0]) == 0)
        time.sleep(0.2)
        cpu = time.process_time()
        time.sleep(1.5)
        assert time.process_time() - cpu < 0.3


def test_a_follower_ships_a_new_commit_without_waiting_for_its_interval(
    nodes: list[Path], tmp_path: Path
) -> None:
    """Following with a 60 s --interval, rows a node commits later are shipped within
    seconds: the WAL watch starts a pass as soon as the file changes."""
    collector = Collector([nodes[0]], SQLiteSink(tmp_path / "central.db"), SyncOptions(interval=60))
    with Following(collector):
        eventually(lambda: unsynced(nodes[0]) == 0)
        make_node_db(nodes[0], seed=9, backfill="1m")  # the node commits 60 more rows
        eventually(lambda: newest(nodes[0]) == 660 and unsynced(nodes[0]) == 0, timeout=15)


def test_a_failed_read_after_a_shipped_batch_marks_it_and_names_the_cause(
    nodes: list[Path], tmp_path: Path
) -> None:
    """When the next batch cannot be read while one is in flight, the acknowledged batch is
    still marked and the error given is the read's own (here, bytes that are not UTF-8)."""
    with sqlite3.connect(nodes[0]) as conn:
        conn.execute("UPDATE sensor_readings SET location = CAST(x'ff' AS TEXT) WHERE id = 150")
    options = SyncOptions(batch_size=100, once=True, max_failures=2)
    out = tmp_path / "out"
    summary = Collector([nodes[0]], FilesSink(out, "jsonl"), options).run()
    (failure,) = summary.failed_sources
    assert "Could not decode to UTF-8" in failure and "not open" not in failure
    shipped = [json.loads(line) for path in out.glob("*.jsonl") for line in path.open()]
    assert sorted(row["source_row_id"] for row in shipped) == list(range(1, 101))
    assert summary.rows_shipped == 100
    assert unsynced(nodes[0]) == 500
