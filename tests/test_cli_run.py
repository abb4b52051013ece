"""`python main.py` end to end: exit codes, messages, backfill, live pacing, signals, restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    MAIN,
    ROOT,
    clean_env,
    log_events,
    query,
    run_main,
    write_config,
    write_identity,
)
from nodeproc import NodeProcess, count_rows, http_json, start_node, wait_until
from servers import free_port

FIRMWARE_QUERY = (ROOT / "queries" / "firmware_anomaly_rates.sql").read_text()


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    found = log_events(result.stderr, "run summary")
    assert found, result.stderr[-2000:]
    return found[-1]


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        (
            "anomalies:\n  probability: 1.5\n",
            "config.yaml: anomalies.probability: must be between 0 and 1 (got 1.5)",
        ),
        (
            "simulation:\n  readings_per_second: -1\n",
            "config.yaml: simulation.readings_per_second: must be greater than 0 (got -1)",
        ),
        (
            "simulation:\n  readings_per_second: .nan\n",
            "config.yaml: simulation.readings_per_second: expected a finite number (got NaN)",
        ),
        (
            "normal_parameters:\n  temperature: {mean: 60, std_dev: 1, min: 90, max: 50}\n",
            "config.yaml: normal_parameters.temperature: min must not exceed max",
        ),
        (
            "databse:\n  path: x.db\n",
            "config.yaml: databse: unknown key (did you mean 'database'?)",
        ),
        ("", "config.yaml: (top level): file is empty"),
        ("simulation: {readings_per_second: 1\n", "config.yaml: (top level): invalid YAML"),
    ],
)
def test_bad_config_exits_2_with_one_clear_line(
    tmp_path: Path, config_text: str, expected: str
) -> None:
    """A bad config prints `error: file: key: expectation`, no traceback, exit status 2."""
    (tmp_path / "config.yaml").write_text(config_text)
    write_identity(tmp_path / "node_identity.json")
    result = run_main(["--config", "config.yaml", "--identity", "node_identity.json"], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {expected}")
    assert not (tmp_path / "data").exists()


def test_binary_garbage_identity_exits_2(tmp_path: Path) -> None:
    """An identity file full of binary garbage is refused with its name."""
    write_config(tmp_path / "config.yaml")
    (tmp_path / "id.json").write_bytes(bytes(range(256)))
    result = run_main(["--config", "config.yaml", "--identity", "id.json"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: id.json: (top level): not a text file")


def test_missing_files_and_bad_flags_exit_2(tmp_path: Path) -> None:
    """A config that does not exist, a bad duration and --follow alone all exit 2."""
    for args, expected in (
        (["--config", "nope.yaml"], "error: nope.yaml: (file): config file not found"),
        (["--backfill", "ten days"], "error: --backfill: expected a duration"),
        (["--follow"], "error: --follow: only meaningful with --backfill"),
        (["--seed", "x"], "argument --seed: invalid int value"),
    ):
        result = run_main(args, tmp_path)
        assert result.returncode == 2, args
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """``folder``, made read-only: a read-only bind mount as root (root may write into a
    chmod-ed folder), ``chmod 555`` for anyone else."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    try:
        for args in (["--bind", str(folder), str(folder)], ["-o", "remount,bind,ro", str(folder)]):
            subprocess.run(["mount", *args], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot make a read-only bind mount (needs CAP_SYS_ADMIN): {exc}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def test_a_path_that_cannot_hold_a_database_exits_2_at_once(tmp_path: Path) -> None:
    """/dev/null, a named pipe, a folder, a path under a file and a read-only folder are
    each one line and exit 2 before any retry (/dev/null was retried as "database busy"
    for over a minute, a read-only folder for 14 s, both then exit 1)."""
    write_config(tmp_path / "config.yaml")
    write_identity(tmp_path / "node_identity.json")
    os.mkfifo(tmp_path / "pipe.db")
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "plain.txt").write_text("not a folder\n")
    with read_only_folder(tmp_path / "ro") as read_only:
        cases = {
            "/dev/null": "/dev/null is a device, not a regular file; expected the path of a "
            "database file",
            "pipe.db": "pipe.db is a named pipe (FIFO), not a regular file",
            "folder.db": "folder.db is a folder; expected the path of a database file",
            "plain.txt/x.db": "plain.txt is not a folder, so no database can be made under it",
            f"{read_only}/x.db": f"folder {read_only} cannot be written (a read-only folder or "
            "filesystem)",
            f"{read_only}/sub/x.db": f"folder {read_only} cannot be written",
        }
        for db, words in cases.items():
            result = run_main(["--backfill", "10s", "--db", db], tmp_path, timeout=60)
            assert result.returncode == 2, (db, result.stderr[-2000:])
            assert result.stderr.startswith(f"error: database.path: {words}"), result.stderr
            assert len(result.stderr.splitlines()) == 1, result.stderr
        assert list(read_only.iterdir()) == []


def test_paths_that_can_hold_a_database_are_still_accepted(tmp_path: Path) -> None:
    """A file in folders still to be created, and then that existing database, both run."""
    write_config(tmp_path / "config.yaml")
    write_identity(tmp_path / "node_identity.json")
    for _ in range(2):
        result = run_main(["--backfill", "10s", "--db", "new/deeper/x.db"], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    assert query(tmp_path / "new" / "deeper" / "x.db", "SELECT count(*) FROM sensor_readings") == [
        (20,)
    ]


def test_backfill_writes_exact_history_and_is_reproducible(tmp_path: Path, node_files: Any) -> None:
    """--backfill 2h at 2/s writes 14,400 rows 500 ms apart; the same seed repeats them."""
    node_files({"simulation": {"readings_per_second": 2}})
    args = [
        "--config",
        "config.yaml",
        "--identity",
        "node_identity.json",
        "--backfill",
        "2h",
        "--start",
        "2024-03-01T00:00:00Z",
        "--seed",
        "42",
    ]
    first = run_main([*args, "--db", "a.db"], tmp_path)
    second = run_main([*args, "--db", "b.db"], tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr
    assert summary(first)["rows_written"] == 14_400
    rows_a = query(tmp_path / "a.db", "SELECT * FROM sensor_readings ORDER BY id")
    rows_b = query(tmp_path / "b.db", "SELECT * FROM sensor_readings ORDER BY id")
    assert rows_a == rows_b
    assert rows_a[0][1] == "2024-03-01T00:00:00.000000Z"
    assert rows_a[-1][1] == "2024-03-01T01:59:59.500000Z"
    gaps = query(
        tmp_path / "a.db",
        "SELECT DISTINCT round((julianday(timestamp) - julianday("
        "LAG(timestamp) OVER (ORDER BY id))) * 86400, 3) FROM sensor_readings",
    )
    assert {g[0] for g in gaps if g[0] is not None} == {0.5}
    other = run_main([*args[:-1], "43", "--db", "c.db"], tmp_path)
    assert other.returncode == 0
    assert query(tmp_path / "c.db", "SELECT * FROM sensor_readings ORDER BY id") != rows_a


def test_backfill_ends_now_and_follow_continues_live(tmp_path: Path, node_files: Any) -> None:
    """Without --start history ends now; --follow continues without a gap or overlap."""
    node_files({"simulation": {"readings_per_second": 10}})
    before = time.time()
    result = run_main(["--backfill", "30s", "--follow", "--run-time", "2", "--seed", "1"], tmp_path)
    after = time.time()
    assert result.returncode == 0, result.stderr
    db = tmp_path / "data" / "sensor_data.db"
    count, first = query(db, "SELECT COUNT(*), MIN(timestamp) FROM sensor_readings")[0]
    assert count == 320
    # History ends when the node starts, somewhere between the two clock readings (start-up
    # takes a while on a loaded machine), and the live part follows it for 2 s.
    history_start = datetime.fromisoformat(first.replace("Z", "+00:00")).timestamp()
    assert before - 30 - 1 <= history_start <= after - 30 - 2 + 1
    distinct = query(db, "SELECT COUNT(DISTINCT timestamp) FROM sensor_readings")[0][0]
    assert distinct == count


def test_live_run_is_paced_exactly(tmp_path: Path, node_files: Any) -> None:
    """A 4-second live run at 250 readings/s writes 1,000 rows and takes about 4 s."""
    node_files({"simulation": {"readings_per_second": 250}})
    started = time.monotonic()
    result = run_main(["--run-time", "4", "--seed", "3"], tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    count, first, last = query(
        tmp_path / "data" / "sensor_data.db",
        "SELECT COUNT(*), MIN(timestamp), MAX(timestamp) FROM sensor_readings",
    )[0]
    assert count == 1000
    span = datetime.fromisoformat(last.replace("Z", "+00:00")) - datetime.fromisoformat(
        first.replace("Z", "+00:00")
    )
    assert span.total_seconds() == pytest.approx(999 / 250, abs=1e-3)
    # Paced, not backfilled: the run cannot end before its readings fall due (start-up time
    # on a loaded machine only adds to this, so no upper bound is asserted).
    assert elapsed > 3.8


def test_sigterm_flushes_every_generated_row_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM mid-run writes the buffered rows (flush interval far away) and exits 0."""
    port = free_port()
    config = {
        "monitoring": {"enabled": True, "port": port},
        "database": {
            "flush_interval_seconds": 3600,
            "batch_size": 1_000_000,
            "max_buffered_rows": 1_000_000,
        },
    }
    with start_node(tmp_path, config, wait_rows=False) as node:
        node.wait_for("node starting", timeout=60)
        status = f"http://127.0.0.1:{port}/status"
        wait_until(lambda: generated(status) > 0, timeout=60, what="the monitor")
        # The first rows are written at once; then a second of readings sits in the buffer,
        # none of it written.
        first = count_rows(tmp_path / "data.db")
        wait_until(lambda: generated(status) >= first + 50, timeout=60, what="50 buffered readings")
        assert count_rows(tmp_path / "data.db") == first
        assert node.stop() == 0, node.stderr
        written = node.summary()["rows_written"]
    assert written == count_rows(tmp_path / "data.db") >= 50


def generated(status_url: str) -> int:
    """Readings the node reports generated; 0 while its endpoint is not up yet."""
    try:
        _status, body = http_json("GET", status_url)
    except OSError:
        return 0
    return int(body["counts"]["readings_generated"])


def test_restart_appends_and_never_deletes(tmp_path: Path, node_files: Any) -> None:
    """A second run on the same file keeps the first run's rows and continues the ids."""
    node_files({"simulation": {"readings_per_second": 5}})
    assert run_main(["--backfill", "10s", "--seed", "1"], tmp_path).returncode == 0
    assert run_main(["--backfill", "10s", "--seed", "2"], tmp_path).returncode == 0
    ids = query(tmp_path / "data" / "sensor_data.db", "SELECT id FROM sensor_readings ORDER BY id")
    assert [i[0] for i in ids] == list(range(1, 101))


def test_env_overrides_identity_without_files(tmp_path: Path) -> None:
    """With no files at all, SENSOR_ID/SENSOR_LOCATION set the built-in identity."""
    result = run_main(
        ["--backfill", "5s", "--db", "x.db"],
        tmp_path,
        env={
            "SENSOR_ID": "CUSTOM001",
            "SENSOR_LOCATION": "Custom Location",
            "LOG_FORMAT": "json",
            "LOG_FILE": "",
        },
    )
    assert result.returncode == 0, result.stderr
    assert query(tmp_path / "x.db", "SELECT DISTINCT sensor_id, location FROM sensor_readings") == [
        ("CUSTOM001", "Custom Location")
    ]


def test_per_sensor_databases_and_a_folder_of_identities(tmp_path: Path) -> None:
    """--identity DIR runs every identity; {sensor_id} in the path gives each its own file."""
    write_config(tmp_path / "config.yaml", database={"path": "data/{sensor_id}.db"})
    (tmp_path / "ids").mkdir()
    for name in ("A", "B", "C"):
        write_identity(tmp_path / "ids" / f"{name}.json", id=name)
    result = run_main(["--identity", "ids", "--backfill", "1m"], tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("A", "B", "C"):
        assert query(
            tmp_path / "data" / f"{name}.db", "SELECT sensor_id, COUNT(*) FROM sensor_readings"
        ) == [(name, 60)]


def test_several_processes_share_one_file_without_loss(tmp_path: Path) -> None:
    """Three node processes writing one database file land every row they report."""
    write_config(
        tmp_path / "config.yaml",
        simulation={"readings_per_second": 200},
        database={"batch_size": 50},
    )
    procs = []
    for name in ("P1", "P2", "P3"):
        write_identity(tmp_path / f"{name}.json", id=name)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(MAIN), "--identity", f"{name}.json", "--run-time", "4"],
                cwd=tmp_path,
                env=clean_env(),
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert "database is locked" not in stderr
    counts = dict(
        query(
            tmp_path / "data" / "sensor_data.db",
            "SELECT sensor_id, COUNT(*) FROM sensor_readings GROUP BY 1",
        )
    )
    assert counts == {"P1": 800, "P2": 800, "P3": 800}


@pytest.mark.slow
def test_firmware_query_shows_documented_rates(tmp_path: Path) -> None:
    """The original firmware comparison query shows ≈7.5 % (1.3) and ≈3.5 % (1.4)."""
    # Durations a tenth of the defaults: ten times as many episodes per row, same rates.
    write_config(
        tmp_path / "config.yaml",
        anomalies={
            "probability": 0.05,
            "types": {
                "trend": {"duration_seconds": 30},
                "pattern": {"duration_seconds": 60},
                "missing_data": {"duration_seconds": 3},
                "noise": {"duration_seconds": 18},
            },
        },
    )
    write_identity(tmp_path / "old.json", id="OLD", firmware_version="1.3")
    write_identity(tmp_path / "new.json", id="NEW", firmware_version="1.4")
    result = run_main(
        ["--identity", "old.json", "new.json", "--backfill", "10d", "--seed", "2024"],
        tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rates = {
        fw: pct for fw, _, _, pct in query(tmp_path / "data" / "sensor_data.db", FIRMWARE_QUERY)
    }
    assert rates["1.3"] == pytest.approx(7.5, rel=0.1)
    assert rates["1.4"] == pytest.approx(3.5, rel=0.1)


def test_node_joining_a_locked_shared_file_waits_instead_of_failing(tmp_path: Path) -> None:
    """A node whose schema step meets a lock held past its busy timeout retries and starts."""
    write_config(tmp_path / "config.yaml", database={"path": "shared.db", "busy_timeout_ms": 300})
    write_identity(tmp_path / "node_identity.json")
    assert run_main(["--backfill", "5s", "--seed", "1"], tmp_path).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('held', flush=True)\n"
            "sys.stdin.readline(); c.execute('COMMIT')\n",
            str(tmp_path / "shared.db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with NodeProcess(["--backfill", "5s", "--seed", "2"], tmp_path) as node:
        # The lock is released only once the node has met it and said it will retry.
        node.wait_for("database busy at open, retrying", timeout=120)
        holder.stdin.write("release\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        assert node.wait(timeout=120) == 0, node.stderr
    assert query(tmp_path / "shared.db", "SELECT COUNT(*) FROM sensor_readings") == [(10,)]
