"""Hot-reload latency: from writing the identity file to the first row with the new values.

A real node runs at 200 readings/s with quick flushes; the benchmark flips
the identity's firmware back and forth and, for each write, finds the first
row carrying the new firmware. Two figures per write:

* **applied**: the scheduled time of that reading minus the time of the write
  (when the node started using the new settings; resolution 5 ms), and
* **visible**: when the row could be read from the database minus the time of
  the write (adds the flush interval, 50 ms here; 1 s by default).

The same node settings with file events off and a 1 s poll are measured in
the same run as the baseline: what polling file times gives (peers poll every
5-60 s, so their real figure is worse still).

    python -m bench.reload [--edits N] [--smoke]
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ._common import parser, save

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.py"
RATE = 200.0
TARGET_P95_MS = 1000.0
IDENTITY = {
    "id": "BENCH",
    "location": "Bench",
    "manufacturer": "SensorTech",
    "model": "TempVibe-2000",
}


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _write(path: Path, firmware: str, style: str) -> None:
    text = json.dumps({**IDENTITY, "firmware_version": firmware})
    if style == "rename":
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    else:
        with open(path, "w") as handle:
            handle.write(text)


def _first_row(db: Path, firmware: str, after_id: int, deadline: float) -> tuple[int, str, float]:
    """Poll until a row with ``firmware`` appears after ``after_id``; (id, timestamp, seen at)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        while time.time() < deadline:
            try:
                row = conn.execute(
                    "SELECT id, timestamp FROM sensor_readings "
                    "WHERE id > ? AND firmware_version = ? ORDER BY id LIMIT 1",
                    (after_id, firmware),
                ).fetchone()
            except sqlite3.OperationalError:  # the schema is still being created
                row = None
            if row:
                return int(row[0]), str(row[1]), time.time()
            time.sleep(0.002)
    raise RuntimeError(f"no row with firmware {firmware} within the deadline")


def measure(folder: Path, edits: int, events: bool, style: str) -> dict[str, Any]:
    """Run one node and time ``edits`` identity writes; latencies in milliseconds."""
    folder.mkdir()
    db = folder / "data.db"
    config = {
        "simulation": {"readings_per_second": RATE, "seed": 1},
        "anomalies": {"enabled": False},
        "database": {"path": str(db), "flush_interval_seconds": 0.05},
        "logging": {"file": None, "format": "json", "level": "WARNING"},
        "monitoring": {"enabled": False},
        "config_reload": {
            "enabled": True,
            "watch_events": events,
            "check_interval_seconds": 1.0,
        },
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    identity = folder / "node_identity.json"
    _write(identity, "v0", "rename")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    node = subprocess.Popen(
        [sys.executable, str(MAIN), "--config", "config.yaml", "--identity", identity.name],
        cwd=folder,
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    applied, visible = [], []
    chance = random.Random(3)
    try:
        _wait_file(db)
        last_id, _, _ = _first_row(db, "v0", 0, time.time() + 30)
        time.sleep(0.5)
        for number in range(1, edits + 1):
            # Writes land at random phases of the poll interval and of the reading schedule.
            time.sleep(chance.uniform(0.2, 0.5) if events else chance.uniform(0.1, 1.0))
            firmware = f"v{number}"
            written_at = time.time()
            _write(identity, firmware, style)
            last_id, stamp, seen_at = _first_row(db, firmware, last_id, written_at + 10)
            applied.append((_epoch(stamp) - written_at) * 1000)
            visible.append((seen_at - written_at) * 1000)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
    return {
        "mode": "file events" if events else "polling every 1 s",
        "edit_style": style,
        "edits": edits,
        "applied_ms": _stats(applied),
        "visible_ms": _stats(visible),
    }


def _wait_file(db: Path) -> None:
    deadline = time.time() + 30
    while not db.exists():
        if time.time() > deadline:
            raise RuntimeError("the node never created its database")
        time.sleep(0.02)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(quantile(0.95), 1),
        "max": round(ordered[-1], 1),
        "min": round(ordered[0], 1),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--edits", type=int, default=40, help="identity writes per mode")
    options = args.parse_args()
    edits = 5 if options.smoke else options.edits
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, events, style in (
            ("events_rename", True, "rename"),
            ("events_in_place", True, "in_place"),
            ("polling_baseline", False, "rename"),
        ):
            result = measure(Path(tmp) / name, edits, events, style)
            runs.append(result)
            print(
                f"{result['mode']:>18}, {style:<8}: applied p50 {result['applied_ms']['p50']} ms "
                f"p95 {result['applied_ms']['p95']} ms; visible p50 "
                f"{result['visible_ms']['p50']} ms p95 {result['visible_ms']['p95']} ms",
                flush=True,
            )
    events_runs = [r for r in runs if r["mode"] == "file events"]
    worst_p95 = max(r["applied_ms"]["p95"] for r in events_runs)
    worst_visible_p95 = max(r["visible_ms"]["p95"] for r in events_runs)
    baseline = runs[-1]
    summary = {
        "readings_per_second": RATE,
        "flush_interval_seconds": 0.05,
        "edits_per_mode": edits,
        "events_applied_p95_ms": worst_p95,
        "events_visible_p95_ms": worst_visible_p95,
        "polling_applied_p95_ms": baseline["applied_ms"]["p95"],
        "target_p95_ms": TARGET_P95_MS,
        "runs": runs,
    }
    path = save("reload", summary, options.out)
    print(
        f"reload: file write → first new row p95 {worst_p95} ms applied, "
        f"{worst_visible_p95} ms visible (target < {TARGET_P95_MS:.0f} ms); "
        f"1 s polling baseline p95 {baseline['applied_ms']['p95']} ms  → {path}"
    )


if __name__ == "__main__":
    main()
