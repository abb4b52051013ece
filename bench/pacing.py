"""Live pacing: rows written vs expected at 1, 10, 100 and 1000 readings/s.

Each rate runs one real node process for a fixed run time; the expected
count is run time × rate. Reports the deviation, the wall time against the
run time, and how far the newest row trailed the clock while running.

    python -m bench.pacing [--seconds 30] [--smoke]
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from ._common import parser, save
from ._process import percentile, rounded, run_node, write_config

RATES = (1, 10, 100, 1000)


def one_rate(rate: int, seconds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_config(work / "config.yaml", "data/node.db")
        db = work / "data" / "node.db"
        measured = run_node(
            [
                "--identity",
                str(Path(__file__).resolve().parents[1] / "node_identity.json"),
                "--readings-per-second",
                str(rate),
                "--run-time",
                str(seconds),
                "--seed",
                "1",
            ],
            work,
            watch_db=db,
        )
        if measured.exit_status != 0:
            raise SystemExit(f"pacing: node failed at {rate}/s:\n{measured.stderr[-2000:]}")
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0]
    expected = rate * seconds
    return {
        "readings_per_second": rate,
        "run_seconds": seconds,
        "rows_expected": expected,
        "rows_written": rows,
        "deviation_pct": round(100 * (rows - expected) / expected, 3),
        "wall_seconds": round(measured.wall_seconds, 2),
        "cpu_cores_used": round(measured.cpu_cores, 3),
        "newest_row_lag_p95_s": rounded(percentile(measured.lags, 0.95)),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--seconds", type=int, default=30)
    options = args.parse_args()
    seconds = 3 if options.smoke else options.seconds
    results = [one_rate(rate, seconds) for rate in RATES]
    path = save("pacing", {"rates": results}, options.out)
    for r in results:
        print(
            f"pacing {r['readings_per_second']:>5}/s: {r['rows_written']:,} of "
            f"{r['rows_expected']:,} rows ({r['deviation_pct']:+}%), wall {r['wall_seconds']}s "
            f"for {r['run_seconds']}s, {r['cpu_cores_used']} cores"
        )
    print(f"→ {path}")


if __name__ == "__main__":
    main()
