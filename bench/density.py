"""Density: how many simulated sensors one process keeps on schedule at 1 reading/s.

Runs one real node process with N identities writing one shared database for
T seconds, then checks every sensor's row count against T × rate (within 1 %)
and that its timestamps are exactly one period apart. Reports rows/s sustained
against the rate required, peak memory per simulated sensor above the
interpreter's fixed cost, CPU in cores against the cores available, and how
far the newest row trailed the wall clock while running.

    python -m bench.density [--sensors 10000] [--seconds 300] [--smoke]
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._common import parser, save
from ._process import ROOT, baseline_rss_mb, percentile, rounded, run_node, write_config


def make_identities(folder: Path, count: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sensorfleet",
            "identities",
            "--count",
            str(count),
            "--seed",
            "7",
            "--output-dir",
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def check_rows(db: Path, sensors: int, expected: int) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        counts = [
            c for (c,) in conn.execute("SELECT COUNT(*) FROM sensor_readings GROUP BY sensor_id")
        ]
        off_schedule = conn.execute(
            "SELECT COUNT(*) FROM (SELECT julianday(timestamp) - julianday(LAG(timestamp) "
            "OVER (PARTITION BY sensor_id ORDER BY id)) AS gap FROM sensor_readings) "
            "WHERE gap IS NOT NULL AND abs(gap * 86400 - 1.0) > 0.001"
        ).fetchone()[0]
    within = sum(1 for c in counts if abs(c - expected) <= 0.01 * expected)
    return {
        "sensors_with_rows": len(counts),
        "rows_total": sum(counts),
        "sensors_within_1pct": within,
        "rows_min": min(counts) if counts else 0,
        "rows_max": max(counts) if counts else 0,
        "rows_expected_per_sensor": expected,
        "timestamps_off_schedule": off_schedule,
    }


def run(sensors: int, seconds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_identities(work / "ids", sensors)
        write_config(work / "config.yaml", "data/fleet.db")
        db = work / "data" / "fleet.db"
        measured = run_node(
            ["--identity", "ids", "--run-time", str(seconds), "--seed", "1"], work, watch_db=db
        )
        if measured.exit_status != 0:
            raise SystemExit(f"density: node failed:\n{measured.stderr[-2000:]}")
        rows = check_rows(db, sensors, seconds)
        fixed = baseline_rss_mb(work)
    steady_lags = measured.lags[3:] or measured.lags
    return {
        "sensors": sensors,
        "readings_per_second_each": 1,
        "seconds": seconds,
        "rows_per_s_required": sensors,
        "wall_seconds": round(measured.wall_seconds, 1),
        **rows,
        "all_sensors_within_1pct": rows["sensors_within_1pct"] == sensors,
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "interpreter_rss_mb": round(fixed, 1),
        "rss_kb_per_sensor": round((measured.peak_rss_mb - fixed) * 1024 / sensors, 1),
        "cpu_cores_used": round(measured.cpu_cores, 2),
        "cpu_cores_available": os.cpu_count(),
        "newest_row_lag_p50_s": rounded(percentile(steady_lags, 0.5)),
        "newest_row_lag_p95_s": rounded(percentile(steady_lags, 0.95)),
        "newest_row_lag_max_s": rounded(max(steady_lags) if steady_lags else None),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--sensors", type=int, default=10_000)
    args.add_argument("--seconds", type=int, default=300)
    options = args.parse_args()
    sensors, seconds = (300, 6) if options.smoke else (options.sensors, options.seconds)
    result = run(sensors, seconds)
    path = save("density", result, options.out)
    print(
        f"density: {sensors} sensors × 1/s for {seconds}s: "
        f"{sensors:,} rows/s required, wall {result['wall_seconds']}s, "
        f"all within 1 %: {result['all_sensors_within_1pct']}, "
        f"{result['rss_kb_per_sensor']} KB/sensor, "
        f"{result['cpu_cores_used']} of {result['cpu_cores_available']} cores, "
        f"lag p95 {result['newest_row_lag_p95_s']}s  → {path}"
    )


if __name__ == "__main__":
    main()
