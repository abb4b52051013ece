"""Many sensors in one process: independent streams, per-sensor files, open-file budget."""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import MAIN, clean_env, query, run_main, write_config, write_identity
from nodeproc import micros, rows, start_node_of_sensors
from polling import wait_until

ROWS = "SELECT timestamp, temperature, vibration, voltage, anomaly_type FROM sensor_readings"


def test_a_sensor_gives_the_same_rows_alone_or_among_others(tmp_path: Path) -> None:
    """Sensor A's rows do not depend on which other sensors share its process."""
    write_config(tmp_path / "config.yaml", anomalies={"probability": 0.3})
    (tmp_path / "group").mkdir()
    for name in ("A", "B", "C"):
        write_identity(tmp_path / "group" / f"{name}.json", id=name)
    args = ["--backfill", "1h", "--start", "2024-05-01T00:00:00Z", "--seed", "5"]
    assert (
        run_main([*args, "--identity", "group/A.json", "--db", "alone.db"], tmp_path).returncode
        == 0
    )
    assert run_main([*args, "--identity", "group", "--db", "group.db"], tmp_path).returncode == 0
    alone = query(tmp_path / "alone.db", f"{ROWS} ORDER BY id")
    together = query(tmp_path / "group.db", f"{ROWS} WHERE sensor_id = 'A' ORDER BY id")
    assert len(alone) == 3600
    assert alone == together
    other = query(tmp_path / "group.db", f"{ROWS} WHERE sensor_id = 'B' ORDER BY id")
    assert [r[1:4] for r in other] != [r[1:4] for r in alone]


def test_live_sensors_share_one_schedule(tmp_path: Path) -> None:
    """Fifty sensors at 5 readings/s for 3 s each write exactly 15 rows."""
    write_config(tmp_path / "config.yaml", simulation={"readings_per_second": 5})
    (tmp_path / "ids").mkdir()
    for i in range(50):
        write_identity(tmp_path / "ids" / f"s{i}.json", id=f"S{i:02d}")
    result = run_main(["--identity", "ids", "--run-time", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    counts = query(
        tmp_path / "data" / "sensor_data.db",
        "SELECT COUNT(*) FROM sensor_readings GROUP BY sensor_id",
    )
    assert [c for (c,) in counts] == [15] * 50


def test_duplicate_ids_across_identity_files_are_refused(tmp_path: Path) -> None:
    """Two identity files with one id would mix their rows; that is an input error."""
    write_config(tmp_path / "config.yaml")
    write_identity(tmp_path / "a.json", id="SAME")
    write_identity(tmp_path / "b.json", id="SAME")
    result = run_main(["--identity", "a.json", "b.json", "--backfill", "10s"], tmp_path)
    assert result.returncode == 2
    assert "b.json: id: duplicates the id of a.json ('SAME')" in result.stderr


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_too_many_databases_for_the_open_file_limit_exit_2(tmp_path: Path) -> None:
    """Per-sensor files beyond the descriptor limit are refused up front with the fixes."""
    write_config(tmp_path / "config.yaml", database={"path": "data/{sensor_id}.db"})
    (tmp_path / "ids").mkdir()
    for i in range(100):
        write_identity(tmp_path / "ids" / f"s{i}.json", id=f"S{i}")
    result = subprocess.run(
        [sys.executable, str(MAIN), "--identity", "ids", "--backfill", "5s"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        preexec_fn=_low_file_limit,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert (
        "100 database files need about 364 open files but this process may open 256"
        in result.stderr
    )
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_hundreds_of_per_sensor_files_run_live(tmp_path: Path) -> None:
    """A live node with 400 sensors, one file each (over 1,200 descriptors), paces its
    readings and stops cleanly on SIGTERM; its wake-up on a descriptor past 1023 made
    it exit 1 at the first wait."""
    ids = [f"S{i:03d}" for i in range(400)]
    with start_node_of_sensors(
        tmp_path,
        ids,
        simulation={"readings_per_second": 5, "run_time_seconds": 0},
        # synchronous off: 400 new files are created faster, which is all this test needs
        database={
            "path": "data/{sensor_id}.db",
            "synchronous": "off",
            "flush_interval_seconds": 0.05,
        },
    ) as node:
        started = micros(node.wait_for("node starting", timeout=180)["timestamp"])
        last = tmp_path / "data" / "S399.db"

        def paced_past_start() -> bool:
            # Readings a second past the start come only after the loop has slept.
            try:
                newest = rows(last, "MAX(timestamp)")[0][0] if last.exists() else None
            except sqlite3.OperationalError:  # the file is there, its table not yet
                newest = None
            return node.proc.poll() is not None or (
                newest is not None and micros(newest) > started + 1_000_000
            )

        wait_until(paced_past_start, timeout=60, what="readings paced after the start")
        assert node.proc.poll() is None, node.stderr[-3000:]
        assert node.stop() == 0, node.stderr[-3000:]
    assert "Traceback" not in node.stderr
    assert len(list((tmp_path / "data").glob("S*.db"))) == 400
