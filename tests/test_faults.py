"""Faults reproduced for real while a node runs: nothing committed is lost, everything is said.

Every test counts rows: readings are scheduled exactly 20 ms apart, so a
missing reading shows up as a gap between consecutive timestamps.
"""

from __future__ import annotations

import os
import random
import resource
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from nodeproc import (
    QUICK_FAILURES,
    count_rows,
    gaps,
    http,
    integrity,
    lock_held_by_another_process,
    monitoring_url,
    rows,
    start_node,
    wait_until,
)

PERIOD_US = 20_000  # 50 readings per second


def grow(db: Path, by: int) -> None:
    before = count_rows(db)
    wait_until(lambda: count_rows(db) >= before + by, what=f"{by} more rows in {db.name}")


def stamps(*dbs: Path) -> list[str]:
    found: list[str] = []
    for db in dbs:
        found.extend(r[0] for r in rows(db, "timestamp"))
    return found


def move_database(db: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            os.rename(source, Path(f"{target}{suffix}"))


def test_lock_held_by_another_process_loses_nothing(tmp_path: Path) -> None:
    """Rows wait out a long exclusive lock and are flushed in order when it ends."""
    db = tmp_path / "data.db"
    with start_node(tmp_path, {"database": QUICK_FAILURES}) as node:
        with lock_held_by_another_process(db):
            failed = node.wait_for("write failed", count=2)
        recovered = node.wait_for("write recovered")
        grow(db, 10)
        assert node.stop() == 0
    summary = node.summary()
    assert "database is locked" in failed["error"] and failed["path"] == str(db)
    assert recovered["after_failures"] >= 2 and recovered["rows_dropped"] == 0
    assert summary["rows_dropped"] == 0 and summary["rows_unwritten"] == 0
    assert summary["errors"]["OperationalError"] >= 2
    assert count_rows(db) == summary["rows_written"] == summary["readings_generated"]
    assert gaps(stamps(db), PERIOD_US) == []


def test_full_buffer_drops_oldest_rows_counted(tmp_path: Path) -> None:
    """A small buffer overflows during an outage: the oldest rows go, logged and counted."""
    db = tmp_path / "data.db"
    config = {"database": {**QUICK_FAILURES, "max_buffered_rows": 30, "batch_size": 10}}
    with start_node(tmp_path, config) as node:
        with lock_held_by_another_process(db):
            node.wait_for("rows dropped", count=3)
        node.wait_for("write recovered")
        grow(db, 10)
        assert node.stop() == 0
    summary = node.summary()
    logged = sum(e["rows"] for e in node.named("rows dropped"))
    assert summary["rows_dropped"] == logged > 0
    assert all(e["reason"] == "buffer full" for e in node.named("rows dropped"))
    found = gaps(stamps(db), PERIOD_US)
    assert len(found) == 1, "the drop must be one run of the oldest buffered readings"
    assert found[0][1] == logged
    assert count_rows(db) == summary["readings_generated"] - logged


def test_node_gives_up_after_consecutive_failures(tmp_path: Path) -> None:
    """Past max_consecutive_failures the node exits 1 with a clear message and keeps what it had."""
    db = tmp_path / "data.db"
    config = {"database": {**QUICK_FAILURES, "max_consecutive_failures": 3}}
    with start_node(tmp_path, config) as node, lock_held_by_another_process(db):
        status = node.wait(timeout=60)
    assert status == 1
    giving_up = node.wait_for("node giving up")
    assert (
        "gave up after 3 consecutive failed writes (OperationalError: database is locked)"
        in (giving_up["error"])
    )
    assert node.named("rows not written at exit")
    summary = node.summary()
    assert count_rows(db) == summary["rows_written"] > 0
    assert gaps(stamps(db), PERIOD_US) == []
    assert integrity(db) == "ok"


def test_file_size_limit_is_a_full_disk_that_passes(tmp_path: Path) -> None:
    """Writes failing for a file size limit (EFBIG, like a full disk) resume once it is lifted."""
    db = tmp_path / "data.db"
    limit = 256 * 1024

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    with start_node(tmp_path, {"database": QUICK_FAILURES}, preexec_fn=limit_file_size) as node:
        failed = node.wait_for("write failed", count=2)
        unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        resource.prlimit(node.proc.pid, resource.RLIMIT_FSIZE, unlimited)
        node.wait_for("write recovered")
        grow(db, 10)
        assert node.stop() == 0
    assert failed["error"] in ("database or disk is full", "disk I/O error")
    summary = node.summary()
    assert summary["rows_dropped"] == 0
    assert count_rows(db) == summary["readings_generated"]
    assert gaps(stamps(db), PERIOD_US) == []
    assert integrity(db) == "ok"


def _move_file(folder: Path, db: Path) -> tuple[Callable[[], None], list[Path]]:
    move_database(db, folder / "moved.db")
    return (lambda: None), [folder / "moved.db", db]


def _move_folder(folder: Path, db: Path) -> tuple[Callable[[], None], list[Path]]:
    os.rename(db.parent, folder / "old-data")
    return (lambda: None), [folder / "old-data" / db.name, db]


def _folder_at_path(folder: Path, db: Path) -> tuple[Callable[[], None], list[Path]]:
    move_database(db, folder / "moved.db")
    db.mkdir()
    return db.rmdir, [folder / "moved.db", db]


FILE_FAULTS = {
    "file_moved_away": _move_file,
    "folder_moved_away": _move_folder,
    "folder_where_the_file_was": _folder_at_path,
}


@pytest.mark.parametrize("fault", FILE_FAULTS)
def test_database_file_removed_or_replaced_while_running(tmp_path: Path, fault: str) -> None:
    """The node notices the file is gone, writes a new one and loses no reading in between."""
    db = tmp_path / "data" / "data.db"
    config = {"database": {**QUICK_FAILURES, "path": "data/data.db"}}
    node = start_node(tmp_path, config, wait_rows=False)
    with node:
        wait_until(lambda: count_rows(db) > 20, what="rows")
        restore, files = FILE_FAULTS[fault](tmp_path, db)
        if fault == "folder_where_the_file_was":
            node.wait_for("write failed", count=2)
        restore()
        wait_until(lambda: count_rows(db) > 20, what="rows in the new file")
        assert node.stop() == 0
    assert node.named("database file replaced, reopening")
    summary = node.summary()
    together = stamps(*files)
    assert gaps(together, PERIOD_US) == []
    assert len(together) == summary["rows_written"] == summary["readings_generated"]
    assert all(integrity(f) == "ok" for f in files)
    assert not list(tmp_path.rglob("*.corrupt-*"))


def _make_database(path: Path, rows_wanted: int) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, timestamp TEXT)")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO sensor_readings (timestamp) VALUES (?)",
            [(f"2024-01-01T00:00:{i:02d}Z",) for i in range(60)] * (rows_wanted // 60),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize("damage", ["garbage", "truncated_with_wal"])
def test_corrupt_database_at_start_is_moved_aside(tmp_path: Path, damage: str) -> None:
    """A non-database is renamed NAME.corrupt-<time> with its -wal/-shm, never deleted."""
    db = tmp_path / "data.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(50_000))
    else:
        _make_database(db, 6000)
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
        Path(f"{db}-wal").write_bytes(b"\x37\x7f\x06\x82" + os.urandom(4000))
        Path(f"{db}-shm").write_bytes(os.urandom(32768))
    # The -shm is a derived index SQLite may rebuild on open; the rest must stay byte for byte.
    before = {s: Path(f"{db}{s}").read_bytes() for s in ("", "-wal") if Path(f"{db}{s}").exists()}
    had_shm = Path(f"{db}-shm").exists()
    with start_node(tmp_path, args=["--run-time", "1"], wait_rows=False) as node:
        assert node.wait(timeout=60) == 0
    moved = node.wait_for("corrupt database moved aside")
    assert moved["level"] == "error" and moved["path"] == str(db)
    target = Path(moved["moved_to"])
    assert target.parent == tmp_path and target.name.startswith("data.db.corrupt-")
    for suffix, content in before.items():
        assert Path(f"{target}{suffix}").read_bytes() == content
    assert Path(f"{target}-shm").exists() == had_shm
    assert integrity(db) == "ok"
    assert count_rows(db) == node.summary()["rows_written"] == 50


def test_sigkill_never_loses_committed_rows_or_corrupts(tmp_path: Path) -> None:
    """SIGKILL at random moments: integrity_check passes and every reported row is there."""
    db = tmp_path / "data.db"
    chance = random.Random(7)
    committed = 0
    for round_number in range(3):
        node = start_node(
            tmp_path,
            {"simulation": {"readings_per_second": 200, "seed": round_number}},
            env={"LOG_LEVEL": "DEBUG"},
            wait_rows=False,
        )
        with node:
            node.wait_for("batch written", count=3)
            time.sleep(chance.uniform(0.05, 0.6))
            node.kill()
        reported = node.named("batch written")[-1]["rows_written"]
        on_disk = count_rows(db)
        assert integrity(db) == "ok"
        assert on_disk >= committed + reported, "a row the node reported committed is missing"
        # At most the batches committed after the last log line made it out: a second's worth.
        assert on_disk - committed - reported <= 200
        committed = on_disk
    assert len(set(r[0] for r in rows(db, "id"))) == committed


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk that really fills up and can really be made read-only."""
    volume = tmp_path / "volume"
    volume.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(volume))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        message = f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield volume
    finally:
        for target in sorted(
            (
                Path(line.split()[1])
                for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1].startswith(str(tmp_path))
            ),
            key=lambda p: len(str(p)),
            reverse=True,
        ):
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem has no space left."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError:
            pass
    return filler


def test_full_disk_then_read_only_folder_lose_nothing(small_volume: Path, tmp_path: Path) -> None:
    """A really full disk, then a folder gone read-only: rows wait and land once it passes."""
    data = small_volume / "data"
    data.mkdir()
    db = data / "data.db"
    # Commits every 0.5 s, not 0.05: each commit adds pages to the WAL (about 7, some
    # 570 KB/s at 20 commits a second), which on its own filled the 2 MB volume within
    # seconds, before fill() could, in about half the runs on a busy machine.
    config = {"database": {**QUICK_FAILURES, "path": str(db), "flush_interval_seconds": 0.5}}
    with start_node(tmp_path, config, wait_rows=False) as node:
        wait_until(lambda: count_rows(db) > 20, what="rows")
        filler = fill(small_volume)
        full = node.wait_for("write failed", count=2)
        filler.unlink()
        node.wait_for("write recovered")
        grow(db, 10)

        # Read-only: a second, writable view lets us move the file while the node's
        # own path is read-only, so it must create a new file and cannot.
        writable = tmp_path / "writable-view"
        writable.mkdir()
        _mount("--bind", str(data), str(writable))
        _mount("--bind", str(data), str(data))
        _mount("-o", "remount,bind,ro", str(data))
        move_database(writable / "data.db", writable / "moved.db")
        read_only = node.wait_for("write failed", lambda e: "unable to open" in e["error"], count=2)
        subprocess.run(["umount", str(data)], check=True)
        node.wait_for("write recovered", count=2)
        grow(db, 10)
        assert node.stop() == 0
    assert "full" in full["error"] or "I/O" in full["error"]
    assert read_only["path"] == str(db)
    summary = node.summary()
    files = [data / "moved.db", db]
    together = stamps(*files)
    assert gaps(together, PERIOD_US) == []
    assert len(together) == summary["readings_generated"]
    assert all(integrity(f) == "ok" for f in files)


def _foreign_database(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE inventory (item TEXT)")
        conn.execute("INSERT INTO inventory VALUES ('pump')")
        conn.commit()


def _own_backup(path: Path, db: Path) -> None:
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(path)) as target:
        source.backup(target)


@pytest.mark.parametrize("kind", ["foreign", "own_backup"])
def test_file_renamed_over_a_running_node_never_gets_its_stale_wal(
    tmp_path: Path, kind: str
) -> None:
    """`cp x tmp && mv tmp db`: the old -wal is never replayed; a foreign file is moved aside."""
    db = tmp_path / "data.db"
    config = {"monitoring": {"enabled": True, "port": 0}}
    with start_node(tmp_path, config) as node:
        grow(db, 50)
        incoming = tmp_path / "incoming.db"
        if kind == "foreign":
            _foreign_database(incoming)
        else:
            _own_backup(incoming, db)
        original = incoming.read_bytes()
        backup_stamps = set(stamps(incoming)) if kind == "own_backup" else set()
        os.replace(incoming, db)
        event = node.wait_for("database file replaced, reopening")
        grow(db, 20)
        url = monitoring_url(node)
        metrics = http("GET", f"{url}/metrics")[2].decode()
        assert node.stop() == 0
    preserved = Path(event["previous_preserved_as"])
    assert integrity(preserved) == "ok"
    written = node.summary()["rows_written"]
    if kind == "foreign":
        moved = node.wait_for("foreign database moved aside")
        assert moved["level"] == "error"
        assert Path(moved["moved_to"]).read_bytes() == original  # intact, tables and all
        assert 'sensorfleet_databases_moved_aside_total{reason="foreign"} 1.0' in metrics
        assert len(stamps(preserved)) + len(stamps(db)) == written
    else:
        assert not node.named("foreign database moved aside")
        # The restored backup holds its own rows and the new ones, nothing replayed from
        # the node's old WAL: every row dated before the restore came with the backup.
        restored = stamps(db)
        newest_in_backup = max(backup_stamps)
        assert {s for s in restored if s <= newest_in_backup} == backup_stamps
        assert len(restored) - len(backup_stamps) + len(stamps(preserved)) == written
    assert integrity(db) == "ok"
    assert gaps(sorted(set(stamps(preserved, db))), PERIOD_US) == []


def test_database_corrupted_in_place_while_running_is_moved_aside(tmp_path: Path) -> None:
    """Pages overwritten under a running node: moved aside, fresh file, SIGTERM exits 0."""
    db = tmp_path / "data.db"
    with start_node(tmp_path, {"database": {"max_consecutive_failures": 0}}) as node:
        grow(db, 100)
        with closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db.stat().st_size
        with open(db, "r+b") as handle:
            handle.seek(4096)
            handle.write(random.Random(3).randbytes(size - 4096))
        moved = node.wait_for("corrupt database moved aside")
        grow(db, 20)
        assert node.stop() == 0
    assert moved["level"] == "error"
    assert Path(moved["moved_to"]).exists()
    summary = node.summary()
    assert summary["rows_unwritten"] == 0
    assert summary["moved_aside"] == {"corrupt": 1}
    assert integrity(db) == "ok"
    assert count_rows(db) >= 20  # the fresh file took every row since the move
    assert gaps(sorted(stamps(db)), PERIOD_US) == []  # no reading lost since the move
