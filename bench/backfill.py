"""Backfill throughput of one node vs the raw SQLite insert ceiling on this machine.

Both sides use the same schema, pragmas, batch size and transaction helper;
the ceiling inserts pre-built tuples with ``executemany`` (generation cost
excluded), ours runs the real backfill path (generate → rows → write). They
run interleaved, several rounds, and the medians are compared.

    python -m bench.backfill [--rows N] [--rounds R] [--smoke]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec

from sensorfleet import logs
from sensorfleet.node.clock import ManualClock
from sensorfleet.node.config import Config, build_config
from sensorfleet.node.generator import SensorGenerator, Settings
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors
from sensorfleet.node.store import Store

from ._common import median, parser, save, timed

START = 1_700_000_000.0


def ceiling(path: Path, rows: int, settings: Settings) -> float:
    """Seconds to insert ``rows`` pre-built tuples in batches through the store."""
    batch = settings.config.database.batch_size
    generator = SensorGenerator(settings, 1, START)
    batches = [generator.generate(min(batch, rows - i)).rows() for i in range(0, rows, batch)]
    store = Store(path, settings.config.database)
    store.open()

    def insert_all() -> None:
        for chunk in batches:
            store.write(chunk)

    seconds = timed(insert_all)
    store.close()
    return seconds


def ours(path: Path, rows: int, settings: Settings) -> float:
    """Seconds for the node's real backfill path to write ``rows`` readings."""
    config = msgspec.structs.replace(
        settings.config,
        database=msgspec.structs.replace(settings.config.database, path=str(path)),
    )
    sensors = build_sensors(config, [(None, settings.identity)], 1, START)
    loop = NodeLoop(config, sensors, ManualClock(START))
    rate = config.simulation.readings_per_second
    seconds = timed(lambda: loop.backfill(START + rows / rate))
    summary = loop.close()
    assert summary.rows_written == rows, summary
    return seconds


def conditions(config: Config, rows: int, rounds: int) -> dict[str, Any]:
    """What both sides of a backfill comparison shared."""
    return {
        "rows": rows,
        "rounds": rounds,
        "batch_size": config.database.batch_size,
        "journal_mode": config.database.journal_mode,
        "synchronous": config.database.synchronous,
    }


def run(rows: int, rounds: int) -> dict[str, Any]:
    logs.configure(level="WARNING")  # a log line per batch would be measured too
    config = build_config({}, "bench")
    settings = Settings.resolve(config, build_identity(DEFAULT_IDENTITY, "bench", {}))
    ceiling_s, ours_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            ceiling_s.append(ceiling(Path(tmp) / f"ceiling{i}.db", rows, settings))
            ours_s.append(ours(Path(tmp) / f"ours{i}.db", rows, settings))
    ceiling_rate, ours_rate = rows / median(ceiling_s), rows / median(ours_s)
    return {
        **conditions(config, rows, rounds),
        "ceiling_rows_per_s": round(ceiling_rate),
        "backfill_rows_per_s": round(ours_rate),
        "ratio": round(ours_rate / ceiling_rate, 3),
        "target_ratio": 0.8,
        "simulated_days_per_s": round(ours_rate / 86_400, 2),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--rows", type=int, default=1_000_000)
    args.add_argument("--rounds", type=int, default=3)
    options = args.parse_args()
    rows, rounds = (50_000, 1) if options.smoke else (options.rows, options.rounds)
    result = run(rows, rounds)
    path = save("backfill", result, options.out)
    print(
        f"backfill: {result['backfill_rows_per_s']:,} rows/s  "
        f"ceiling: {result['ceiling_rows_per_s']:,} rows/s  "
        f"ratio: {result['ratio']} (target ≥ {result['target_ratio']})  → {path}"
    )


if __name__ == "__main__":
    main()
