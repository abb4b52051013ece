"""The write path under faults: buffering, ordered flushes, drops, backoff, reopen, corruption."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from sensorfleet.errors import StoreUnavailableError
from sensorfleet.node.config import Database, build_config
from sensorfleet.node.generator import SensorGenerator, Settings
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.store import MAX_BACKOFF_SECONDS, Store, quarantine
from sensorfleet.node.writer import BufferedWriter

START = 1_700_000_000.0


def settings(**database: Any) -> Settings:
    config = build_config(
        {
            "simulation": {"readings_per_second": 10},
            "anomalies": {"enabled": False},
            "database": {"busy_timeout_ms": 50, "retry_attempts": 2, **database},
        },
        "test",
    )
    return Settings.resolve(config, build_identity(DEFAULT_IDENTITY, "test", {}))


def make_writer(path: Path, **database: Any) -> tuple[BufferedWriter, SensorGenerator]:
    resolved = settings(**database)
    store = Store(path, resolved.config.database)
    store.open()
    return BufferedWriter(store, resolved.config.database), SensorGenerator(resolved, 1, START)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock, as a long-running tool would."""
    with closing(sqlite3.connect(path, isolation_level=None, timeout=5)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield other
        finally:
            other.execute("ROLLBACK")


def timestamps(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT timestamp FROM sensor_readings ORDER BY id")]


def expected_stamps(generator_settings: Settings, first: int, count: int) -> list[str]:
    fresh = SensorGenerator(generator_settings, 1, START)
    block = fresh.generate(first + count).slice(first, first + count)
    return [row[0] for row in block.iter_rows()]


def test_locked_database_buffers_then_flushes_everything_in_order(tmp_path: Path) -> None:
    """While another process holds the lock, blocks wait in memory; afterwards all land in order."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path)
    with exclusive_lock(path):
        for _ in range(3):
            writer.add(generator.generate(10))
            assert writer.flush(START) is False
        assert writer.pending_rows == 30
        assert writer.stats.errors == {"OperationalError": 3}
        assert "database is locked" in (writer.stats.last_error or "")
    writer.add(generator.generate(10))
    with capture_logs() as logs:
        assert writer.flush(START + 10) is True
    assert writer.pending_rows == 0 and writer.stats.rows_written == 40
    assert timestamps(path) == expected_stamps(settings(), 0, 40)
    recovered = [e for e in logs if e["event"] == "write recovered"]
    assert recovered and recovered[0]["after_failures"] == 3 and recovered[0]["rows"] == 40


def test_write_recovered_is_said_once_the_writer_is_healthy(tmp_path: Path) -> None:
    """Whoever reads "write recovered" and then asks the writer's state finds it healthy."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path)
    with exclusive_lock(path):
        writer.add(generator.generate(10))
        assert writer.flush(START) is False
    seen: list[tuple[int, float | None]] = []

    def note_state(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if event["event"] == "write recovered":
            seen.append((writer.stats.consecutive_failures, writer.stats.last_success))
        return event

    before = structlog.get_config()
    structlog.configure(processors=[note_state, *before["processors"]])
    try:
        assert writer.flush(START + 10) is True
    finally:
        structlog.configure(**before)
    assert seen == [(0, START + 10)]


def test_full_buffer_drops_the_oldest_rows_and_says_so(tmp_path: Path) -> None:
    """Past max_buffered_rows the oldest readings go first, counted and logged, never silently."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path, max_buffered_rows=25, batch_size=10)
    with exclusive_lock(path), capture_logs() as logs:
        for _ in range(4):
            writer.add(generator.generate(10))
            writer.flush(START)
    assert writer.pending_rows == 25 and writer.stats.rows_dropped == 15
    dropped = [e for e in logs if e["event"] == "rows dropped"]
    assert sum(e["rows"] for e in dropped) == 15
    assert dropped[-1]["total_dropped"] == 15 and dropped[-1]["reason"] == "buffer full"
    assert writer.flush(START + 1) is True
    assert timestamps(path) == expected_stamps(settings(), 15, 25)


def test_the_flush_interval_runs_from_the_newest_reading_written(tmp_path: Path) -> None:
    """A late flush does not shift the next one: it is due one interval after the newest row."""
    writer, generator = make_writer(tmp_path / "a.db", flush_interval_seconds=1.0)
    block = generator.generate(1)
    newest = int(block.times_us[-1]) / 1e6
    writer.add(block)
    assert writer.flush(newest + 0.3) is True
    writer.add(generator.generate(1))
    assert writer.next_deadline(newest + 0.5) == newest + 1.0


def test_a_new_writer_commits_its_first_rows_at_once(tmp_path: Path) -> None:
    """A node that just started shows in its file without waiting out a flush interval;
    the rows after the first flush wait for the interval again."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path, flush_interval_seconds=5.0)
    writer.add(generator.generate(1))
    assert writer.next_deadline(START) == START
    writer.maybe_flush(START)
    assert writer.stats.flushes == 1 and timestamps(path) == expected_stamps(settings(), 0, 1)
    writer.add(generator.generate(1))
    writer.maybe_flush(START + 1)
    assert writer.stats.flushes == 1 and writer.pending_rows == 1
    assert writer.next_deadline(START + 1) == START + 5.0


def test_a_loop_catching_up_flushes_by_interval_not_after_every_block(tmp_path: Path) -> None:
    """Readings far behind the clock do not make every next block due at once."""
    writer, generator = make_writer(tmp_path / "a.db", flush_interval_seconds=0.2)
    block = generator.generate(1)
    now = int(block.times_us[-1]) / 1e6 + 30.0  # the loop is 30 s behind its readings
    writer.add(block)
    assert writer.flush(now) is True
    for _ in range(5):  # more sensors' (or readings') blocks in the same pass
        writer.add(generator.generate(1))
        writer.maybe_flush(now)
    assert writer.stats.flushes == 1
    assert writer.pending_rows == 5
    assert writer.next_deadline(now) == now + 0.2


def test_backoff_doubles_up_to_its_cap(tmp_path: Path) -> None:
    """Each failed flush waits twice as long as the last, up to the cap."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path, max_consecutive_failures=0)
    writer.add(generator.generate(5))
    waits = []
    with exclusive_lock(path):
        for _ in range(9):
            assert writer.flush(START) is False
            waits.append((writer.next_deadline(START) or 0) - START)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_SECONDS, 30.0, 30.0]


def test_retries_during_an_outage_take_one_attempt(tmp_path: Path) -> None:
    """Only the first failing flush retries inside the transaction; later ones try once."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path, retry_attempts=4)
    writer.add(generator.generate(5))
    with exclusive_lock(path):
        writer.flush(START)
        assert writer.store.retries == 3
        writer.flush(START + 1)
        writer.flush(START + 2)
        assert writer.store.retries == 3
        assert writer.stats.retries == 2


def test_gives_up_only_after_the_configured_number_of_failures(tmp_path: Path) -> None:
    """flush never raises; the loop's maybe_flush raises after max_consecutive_failures."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path, max_consecutive_failures=3, batch_size=1)
    writer.add(generator.generate(5))
    with exclusive_lock(path):
        now = START
        for _ in range(2):
            writer.maybe_flush(now)
            now = writer.next_deadline(now) or now
        with pytest.raises(StoreUnavailableError) as raised:
            writer.maybe_flush(now)
        assert writer.flush(now) is False  # the exit flush does not raise again
    message = str(raised.value)
    assert message.startswith(f"{path}: gave up after 3 consecutive failed writes")
    assert message.endswith("5 buffered rows not written")
    assert writer.flush(now) is True


def test_store_reopens_a_file_that_was_moved_away(tmp_path: Path) -> None:
    """A removed or replaced file is noticed before the next write and created afresh."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path)
    writer.add(generator.generate(5))
    assert writer.flush(START)
    first_id = writer.store.database_id
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            Path(f"{path}{suffix}").rename(tmp_path / f"moved.db{suffix}")
    writer.add(generator.generate(5))
    with capture_logs() as logs:
        assert writer.flush(START + 1)
    assert any(e["event"] == "database file replaced, reopening" for e in logs)
    assert writer.store.database_id != first_id
    assert timestamps(tmp_path / "moved.db") + timestamps(path) == expected_stamps(
        settings(), 0, 10
    )


def test_a_folder_at_the_database_path_is_waited_out_not_moved(tmp_path: Path) -> None:
    """A folder where the file should be is an outage: rows wait and the folder is left alone."""
    path = tmp_path / "a.db"
    writer, generator = make_writer(path)
    writer.add(generator.generate(5))
    assert writer.flush(START)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()
    (path / "keep.txt").write_text("someone's files")
    writer.add(generator.generate(5))
    assert writer.flush(START + 1) is False
    assert "unable to open database file" in (writer.stats.last_error or "")
    assert (path / "keep.txt").read_text() == "someone's files"
    assert not list(tmp_path.glob("*.corrupt-*"))
    (path / "keep.txt").unlink()
    path.rmdir()
    assert writer.flush(START + 2)
    assert timestamps(path) == expected_stamps(settings(), 5, 5)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_file_is_moved_aside_with_its_companions(tmp_path: Path, damage: str) -> None:
    """A file that fails quick_check moves, with -wal/-shm/-journal, to NAME.corrupt-<time>."""
    path = tmp_path / "a.db"
    if damage == "garbage":
        path.write_bytes(b"definitely not SQLite " * 400)
    else:
        writer, generator = make_writer(path)
        for _ in range(20):
            writer.add(generator.generate(100))
            writer.flush(START)
        writer.store.close()
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    companions = {"-wal": b"wal bytes", "-shm": b"shm bytes", "-journal": b"journal bytes"}
    for suffix, content in companions.items():
        Path(f"{path}{suffix}").write_bytes(content)
    original = path.read_bytes()
    with capture_logs() as logs:
        writer, generator = make_writer(path)
    moved = [e for e in logs if e["event"] == "corrupt database moved aside"]
    assert len(moved) == 1 and moved[0]["log_level"] == "error"
    target = Path(moved[0]["moved_to"])
    assert target.name.startswith("a.db.corrupt-")
    assert target.read_bytes() == original
    for suffix, content in companions.items():
        assert Path(f"{target}{suffix}").read_bytes() == content
    assert not Path(f"{path}-journal").exists()  # a stale journal would be replayed
    writer.add(generator.generate(3))
    assert writer.flush(START)
    assert len(timestamps(path)) == 3


def test_quarantine_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    """Two corrupt files moved aside within one second keep distinct names."""
    path = tmp_path / "a.db"
    path.write_bytes(b"first")
    first = quarantine(path)
    path.write_bytes(b"second")
    second = quarantine(path)
    assert first != second
    assert first.read_bytes() == b"first" and second.read_bytes() == b"second"


def test_live_changes_to_busy_timeout_reach_the_open_connection(tmp_path: Path) -> None:
    """A reload that changes busy_timeout_ms or synchronous applies to the open connection."""
    path = tmp_path / "a.db"
    writer, _generator = make_writer(path)
    writer.store.settings = Database(busy_timeout_ms=1234, synchronous="full")
    conn = writer.store._current()
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_one_flush_of_many_sensors_writes_each_blocks_rows_in_order(tmp_path: Path) -> None:
    """A flush of blocks of many sensors (one reading each, as a live tick gives, and
    longer ones, some with skipped missing readings) stores exactly each block's rows, in
    the order the blocks were added, ids counting up in that order; the counters match."""
    config = build_config(
        {
            "anomalies": {"probability": 0.5, "types": {"missing_data": {"record": "skip"}}},
            "database": {"batch_size": 100_000},
        },
        "test",
    )
    store = Store(tmp_path / "fleet.db", config.database)
    store.open()
    writer = BufferedWriter(store, config.database)
    streams = [
        SensorGenerator(
            Settings.resolve(
                config, build_identity({**DEFAULT_IDENTITY, "id": f"S{n:03d}"}, "t", {})
            ),
            3,
            START,
        )
        for n in range(40)
    ]
    blocks = [
        stream.generate(1 if n % 3 else 25) for _ in range(4) for n, stream in enumerate(streams)
    ]
    assert any(b.keep is not None and not b.keep.all() for b in blocks)  # skipped readings
    for block in blocks:
        writer.add(block)
    assert writer.flush(START + 100)

    expected = [row for block in blocks for row in block.iter_rows()]
    with closing(sqlite3.connect(tmp_path / "fleet.db")) as conn:
        stored = conn.execute(
            "SELECT id, timestamp, sensor_id, temperature, vibration, voltage, status_code, "
            "anomaly_flag, anomaly_type, firmware_version, model, manufacturer, location "
            "FROM sensor_readings ORDER BY id"
        ).fetchall()
    assert [row[1:] for row in stored] == expected
    assert [row[0] for row in stored] == list(range(1, len(expected) + 1))
    anomalies: dict[str, int] = {}
    for block in blocks:
        for kind, count in block.anomaly_counts().items():
            anomalies[kind] = anomalies.get(kind, 0) + count
    assert anomalies and writer.stats.anomalies_written == anomalies
    assert sum(writer.stats.rows_by_sensor.values()) == len(expected)
    assert writer.stats.rows_by_sensor["S001"] == sum(
        b.row_count for b in blocks if b.labels.sensor_id == "S001"
    )
