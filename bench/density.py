"""Density: how many simulated sensors one process keeps on schedule at 1 reading/s.

Runs one real node process with N identities writing one shared database for
T seconds, then checks every sensor's row count against T × rate (within 1 %)
and that its timestamps are exactly one period apart. Reports rows/s sustained
against the rate required, peak memory per simulated sensor above the
interpreter's fixed cost, CPU in cores against the cores available, how long
opening the databases took, and how far the newest row trailed the wall clock
while running.

Then the same with one database file per sensor (``{sensor_id}`` in the path),
M sensors: three descriptors per file, so a few hundred sensors already hold
descriptors past 1023 (a node waiting with ``select()`` crashed there).

    python -m bench.density [--sensors 10000[,25000,...]] [--per-sensor-files 2000]
                            [--seconds 300] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from ._common import RESULTS, parser, save
from ._process import ROOT, baseline_rss_mb, percentile, rounded, run_node, write_config


def make_identities(folder: Path, count: int, types: str | None = None) -> None:
    """``count`` generated identities; with ``types`` (``compressor=1,motor=1``) machines of
    those types in those proportions."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sensorfleet",
            "identities",
            "--count",
            str(count),
            *(["--types", types] if types else []),
            "--seed",
            "7",
            "--output-dir",
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def check_rows(
    dbs: list[Path], sensors: int, expected: int, tables: tuple[str, ...] = ("sensor_readings",)
) -> dict[str, Any]:
    counts: list[int] = []
    off_schedule = 0
    for db, table in ((db, table) for db in dbs for table in tables):
        with sqlite3.connect(db) as conn:
            counts += [
                c for (c,) in conn.execute(f"SELECT COUNT(*) FROM {table} GROUP BY sensor_id")
            ]
            off_schedule += conn.execute(
                "SELECT COUNT(*) FROM (SELECT julianday(timestamp) - julianday(LAG(timestamp) "
                f"OVER (PARTITION BY sensor_id ORDER BY id)) AS gap FROM {table}) "
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


def open_seconds(stderr: str) -> float | None:
    """From the run's planned start to 'node starting': opening every database."""
    for line in stderr.splitlines():
        if line.startswith("{") and '"node starting"' in line:
            event = json.loads(line)
            return round(
                datetime.fromisoformat(event["timestamp"]).timestamp()
                - datetime.fromisoformat(event["start"]).timestamp(),
                1,
            )
    return None


def live_lags(
    lags: list[float], lag_at: list[float], opened: float | None, seconds: int
) -> list[float]:
    """The lag samples of the live run: from 3 s after the files were open (the catch-up
    for the opening time settled) to the end of the run time (closing files is not lag)."""
    if opened is None:
        return lags[3:] or lags
    return [lag for lag, at in zip(lags, lag_at, strict=True) if opened + 3 <= at <= seconds]


def sensor_ids(folder: Path) -> list[str]:
    return sorted(json.loads(path.read_text())["id"] for path in folder.glob("*.json"))


def run(
    sensors: int, seconds: int, per_sensor_files: bool = False, types: str | None = None
) -> dict[str, Any]:
    """``sensors`` classic sensors (or machines of ``types``, each at 1 reading/s rather
    than its model's own interval) for ``seconds`` in one node process."""
    tables = (
        tuple(f"{t.split('=')[0]}_readings" for t in types.split(","))
        if types
        else ("sensor_readings",)
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_identities(work / "ids", sensors, types)
        ids = sensor_ids(work / "ids")
        if per_sensor_files:
            write_config(work / "config.yaml", "data/{sensor_id}.db")
            dbs = [work / "data" / f"{sensor_id}.db" for sensor_id in ids]
        else:
            write_config(work / "config.yaml", "data/fleet.db")
            dbs = [work / "data" / "fleet.db"]
        rate = ["--readings-per-second", "1"] if types else []
        measured = run_node(
            ["--identity", "ids", "--run-time", str(seconds), "--seed", "1", *rate],
            work,
            watch_db=dbs[-1],  # the last file opened; every sensor shares one schedule
            watch_table=tables[0],
        )
        if measured.exit_status != 0:
            raise SystemExit(f"density: node failed:\n{measured.stderr[-2000:]}")
        rows = check_rows(dbs, sensors, seconds, tables)
        fixed = baseline_rss_mb(work)
    opened = open_seconds(measured.stderr)
    steady_lags = live_lags(measured.lags, measured.lag_at, opened, seconds)
    return {
        "sensors": sensors,
        **({"types": types} if types else {}),
        "database_files": len(dbs),
        "readings_per_second_each": 1,
        "seconds": seconds,
        "rows_per_s_required": sensors,
        "wall_seconds": round(measured.wall_seconds, 1),
        "open_seconds": opened,
        # Of the run time, what was left to run live once every file was open: a run
        # shorter than opening its files measures catching up, not keeping up.
        "live_seconds_after_opening": None if opened is None else round(seconds - opened, 1),
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
        # The host's 1-minute load average before and after: on a shared machine, a node
        # that gets a fraction of a core falls behind whatever its own cost.
        "host_load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


FULL_SECONDS, FULL_FILES = 300, 2_000


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument(
        "--sensors",
        type=_counts,
        default=[10_000],
        metavar="N[,N...]",
        help="classic sensors in one shared file; each count is a run and a row of its own "
        "(the first is the file's main row, the others its more_sensors list)",
    )
    args.add_argument(
        "--per-sensor-files",
        type=int,
        default=FULL_FILES,
        metavar="M",
        help="then M sensors with one database file each (0: skip that run and keep the "
        "row of an earlier run, if the results file has one)",
    )
    args.add_argument("--seconds", type=int, default=FULL_SECONDS)
    options = args.parse_args()
    if options.smoke:
        # 400 files hold over 1,200 descriptors; 30 s leaves live waits after they open.
        (counts, seconds), (files, files_seconds) = ([300], 6), (400, 30)
    else:
        counts, seconds = options.sensors, options.seconds
        files, files_seconds = options.per_sensor_files, options.seconds
    rows = []
    for sensors in counts:
        row = run(sensors, seconds)
        if not options.smoke and seconds != FULL_SECONDS:
            # A shortened run (a shared machine) says so in the file the README table reads.
            row["notes"] = f"shortened run: {seconds} s (full: {FULL_SECONDS} s)"
        print(line("one shared file", row))
        rows.append(row)
    rows = _with_earlier_rows(rows, options.out) if not options.smoke else rows
    result = rows[0]
    if len(rows) > 1:
        result["more_sensors"] = rows[1:]
    if files > 0:
        result["per_sensor_files"] = run(files, files_seconds, per_sensor_files=True)
        if not options.smoke and (files, files_seconds) != (FULL_FILES, FULL_SECONDS):
            result["per_sensor_files"]["notes"] = (
                f"shortened run: {files:,} per-sensor files for {files_seconds} s "
                f"(full: {FULL_FILES:,} for {FULL_SECONDS} s)"
            )
        print(line("one file per sensor", result["per_sensor_files"]))
    elif not options.smoke and (earlier := _earlier_files_row(options.out)) is not None:
        result["per_sensor_files"] = earlier
    path = save("density", result, options.out)
    print(f"density → {path}")


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected counts such as 25000,50000 (got {text!r})"
        ) from None
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"counts must be at least 1 (got {text!r})")
    return counts


def _earlier(out: Path | None) -> dict[str, Any]:
    try:
        earlier = json.loads((out or RESULTS / "density.json").read_text())
    except (OSError, ValueError):
        return {}
    return earlier if isinstance(earlier, dict) else {}


def _measured_note(row: dict[str, Any], measured: str) -> dict[str, Any]:
    if f"measured {measured}" not in row.get("notes", ""):
        parts = [row.get("notes", ""), f"measured {measured}"]
        row["notes"] = "; ".join(part for part in parts if part)
    return row


def _with_earlier_rows(rows: list[dict[str, Any]], out: Path | None) -> list[dict[str, Any]]:
    """This run's rows and, for sensor counts it did not run, the earlier file's rows
    (marked with when they were measured), fewest sensors first."""
    earlier = _earlier(out)
    measured = str(earlier.get("measured_at", "?"))[:10]
    main = {k: v for k, v in earlier.items() if k not in _FILE_KEYS}
    kept = [main, *earlier.get("more_sensors", [])] if "sensors" in main else []
    ran = {row["sensors"] for row in rows}
    rows = rows + [_measured_note(row, measured) for row in kept if row["sensors"] not in ran]
    return sorted(rows, key=lambda row: int(row["sensors"]))


# Keys of the results file that are not a row's own.
_FILE_KEYS = ("benchmark", "measured_at", "machine", "more_sensors", "per_sensor_files")


def _earlier_files_row(out: Path | None) -> dict[str, Any] | None:
    """The per-sensor-files row of the results file this run replaces, marked with when it
    was measured: a run that skips it keeps it rather than dropping it from the table."""
    earlier = _earlier(out)
    row = earlier.get("per_sensor_files")
    if not isinstance(row, dict):
        return None
    if (row.get("sensors"), row.get("seconds")) != (
        FULL_FILES,
        FULL_SECONDS,
    ) and "shortened" not in row.get("notes", ""):
        said = (
            f"shortened run: {row.get('sensors', 0):,} per-sensor files for "
            f"{row.get('seconds')} s (full: {FULL_FILES:,} for {FULL_SECONDS} s)"
        )
        row["notes"] = "; ".join(part for part in [said, row.get("notes", "")] if part)
    return _measured_note(row, str(earlier.get("measured_at", "?"))[:10])


def line(mode: str, result: dict[str, Any]) -> str:
    return (
        f"density, {mode}: {result['sensors']} sensors × 1/s for {result['seconds']}s: "
        f"{result['sensors']:,} rows/s required, wall {result['wall_seconds']}s "
        f"(opening {result['open_seconds']}s), "
        f"all within 1 %: {result['all_sensors_within_1pct']}, "
        f"{result['rss_kb_per_sensor']} KB/sensor, "
        f"{result['cpu_cores_used']} of {result['cpu_cores_available']} cores, "
        f"lag p95 {result['newest_row_lag_p95_s']}s over "
        f"{result['live_seconds_after_opening']}s live after opening"
    )


if __name__ == "__main__":
    main()
