"""Millions of rows: the report's memory does not grow with the database.

A simulated half day of the demo fleet is copied under new sensor ids until
the file holds over three million rows; the report of the big file must use
about as much memory as the report of the small one, and still agree with SQL.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import clean_env, query
from test_report import FIRMWARE_RATES_SQL, FLEET, simulate, write_fleet, write_report_config

from bench._process import run_measured

COPIES = 20
COLUMNS = (
    "timestamp, sensor_id, temperature, vibration, voltage, status_code, anomaly_flag, "
    "anomaly_type, firmware_version, model, manufacturer, location, synced"
)


def report_with_peak_memory(db: Path, tmp_path: Path) -> tuple[dict[str, object], int, str]:
    """Run the report as a child process; return its JSON, its own peak RSS in KiB and stderr.

    Measured through ``run_measured``: ``wait4`` on a direct child would report
    this test process's peak instead whenever an earlier test made it larger.
    """
    out, err = tmp_path / f"{db.stem}.json", tmp_path / f"{db.stem}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        usage = run_measured(
            [sys.executable, "-m", "sensorfleet", "report", str(db), "--format", "json",
             "--progress"],
            stdout=stdout, stderr=stderr, env=clean_env(),
        )  # fmt: skip
    assert usage.exit_status == 0, err.read_text()
    return json.loads(out.read_text()), usage.peak_rss_kib, err.read_text()


@pytest.mark.slow
def test_millions_of_rows_are_summarised_in_bounded_memory(tmp_path: Path) -> None:
    """A 3.5-million-row database is reported with about the memory of a 170,000-row one, and its numbers equal the SQL."""  # noqa: E501
    config = write_report_config(tmp_path / "config.yaml")
    small = simulate(tmp_path / "small.db", config, write_fleet(tmp_path / "ids", FLEET), "12h")
    big = tmp_path / "big.db"
    with sqlite3.connect(big) as conn:
        source = sqlite3.connect(small)
        source.backup(conn)
        source.close()
        # Building the test file fast: no indexes (the report needs none), no journal.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall():
            conn.execute(f'DROP INDEX "{name}"')
        for copy in range(1, COPIES):
            conn.execute(
                f"INSERT INTO sensor_readings ({COLUMNS}) SELECT "
                f"{COLUMNS.replace('sensor_id', 'sensor_id || ?', 1)} "
                "FROM sensor_readings WHERE id <= ?",
                (f"-copy{copy}", query(small, "SELECT MAX(id) FROM sensor_readings")[0][0]),
            )
    rows = query(big, "SELECT COUNT(*) FROM sensor_readings")[0][0]
    assert rows > 3_000_000
    small_report, small_peak, _ = report_with_peak_memory(small, tmp_path)
    big_report, big_peak, progress = report_with_peak_memory(big, tmp_path)
    summary = big_report["summary"]
    assert isinstance(summary, dict)
    assert summary["rows"] == rows
    assert summary["sensors"] == len(FLEET) * COPIES
    expected = {row[0]: row[1:] for row in query(big, FIRMWARE_RATES_SQL)}
    rates = big_report["anomaly_rate"]
    assert isinstance(rates, dict)
    got = {
        r["group"]: (r["rows"], r["anomalies"], round(100 * r["observed"], 2))
        for r in rates["firmware_version"]
    }
    assert got == expected
    # Twenty times the rows, (almost) the same memory: nothing scales with the row count.
    assert big_peak - small_peak < 40 * 1024, (small_peak, big_peak)
    assert big_peak < 250 * 1024
    assert progress.count("report: 1/1") >= 2
    print(f"peak RSS: {small_peak // 1024} MiB for {small_report['summary']['rows']:,} rows, "  # type: ignore[index]
          f"{big_peak // 1024} MiB for {rows:,} rows")  # fmt: skip
