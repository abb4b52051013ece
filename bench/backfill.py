"""Backfill throughput of one node vs the raw SQLite insert ceiling on this machine.

Both sides use the same schema, pragmas, batch size and transaction helper;
the ceiling inserts pre-built tuples with ``executemany`` (generation cost
excluded), ours runs the real backfill path (generate → rows → write). They
run interleaved, several rounds, and the medians are compared: by wall time
(``ratio``) and by the CPU time of the process (``cpu_ratio``: what the ratio is
on a machine with a core to spare; on a shared, busy one the wall-time ratio
mostly measures the neighbours). ``host_idle_share`` says how much of the host's
cores stood idle while ours ran.

``--split`` also times the parts of a backfill one by one (generation, row
building, ``executemany``, commit), in CPU time of the thread and in wall time.

    python -m bench.backfill [--rows N] [--rounds R] [--split] [--smoke]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from sensorfleet import logs
from sensorfleet.node.clock import ManualClock
from sensorfleet.node.config import Config, build_config
from sensorfleet.node.generator import SensorGenerator, Settings
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors
from sensorfleet.node.store import INSERT_SQL, Store, ensure_schema, open_connection

from ._common import median, parser, save
from .containers import host_cpu

START = 1_700_000_000.0
TARGET_RATIO = 0.95


class Timing:
    """Wall and process CPU seconds of one action, and the host's idle CPU seconds meanwhile."""

    def __init__(self, action: Callable[[], object]) -> None:
        busy, total = host_cpu()
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        self.wall = time.perf_counter() - wall
        self.cpu = time.process_time() - cpu
        busy_after, total_after = host_cpu()
        self.host_idle = (total_after - total) - (busy_after - busy)
        self.host_total = total_after - total


def ceiling(path: Path, rows: int, settings: Settings) -> Timing:
    """Time to insert ``rows`` pre-built tuples in batches through the store."""
    batch = settings.config.database.batch_size
    generator = SensorGenerator(settings, 1, START)
    batches = [generator.generate(min(batch, rows - i)).rows() for i in range(0, rows, batch)]
    store = Store(path, settings.config.database)
    store.open()

    def insert_all() -> None:
        for chunk in batches:
            store.write(chunk)

    timing = Timing(insert_all)
    store.close()
    return timing


def ours(path: Path, rows: int, settings: Settings) -> Timing:
    """Time for the node's real backfill path to write ``rows`` readings."""
    config = msgspec.structs.replace(
        settings.config,
        database=msgspec.structs.replace(settings.config.database, path=str(path)),
    )
    sensors = build_sensors(config, [(None, settings.identity)], 1, START)
    loop = NodeLoop(config, sensors, ManualClock(START))
    rate = config.simulation.readings_per_second
    timing = Timing(lambda: loop.backfill(START + rows / rate))
    summary = loop.close()
    assert summary.rows_written == rows, summary
    return timing


PARTS = ("generation", "row building", "executemany", "commit")


def split(path: Path, rows: int, settings: Settings) -> dict[str, dict[str, float]]:
    """Each part of a backfill timed on its own, as the node does it batch by batch: its
    thread's CPU microseconds per row, and its share of the wall time."""
    database = settings.config.database
    conn = open_connection(path, database)
    ensure_schema(conn)
    generator = SensorGenerator(settings, 1, START)
    cpu = dict.fromkeys(PARTS, 0.0)
    wall = dict.fromkeys(PARTS, 0.0)

    def step(part: str, action: Callable[[], Any]) -> Any:
        started, used = time.perf_counter(), time.thread_time()
        result = action()
        cpu[part] += time.thread_time() - used
        wall[part] += time.perf_counter() - started
        return result

    for i in range(0, rows, database.batch_size):
        count = min(database.batch_size, rows - i)
        block = step("generation", partial(generator.generate, count))
        chunk = step("row building", partial(block.rows))
        conn.execute("BEGIN IMMEDIATE")
        step("executemany", partial(conn.executemany, INSERT_SQL, chunk))
        step("commit", partial(conn.execute, "COMMIT"))
    conn.close()
    total_wall = sum(wall.values())
    return {
        part: {
            "cpu_us_per_row": round(cpu[part] / rows * 1e6, 3),
            "wall_share": round(wall[part] / total_wall, 3),
        }
        for part in PARTS
    }


def conditions(config: Config, rows: int, rounds: int) -> dict[str, Any]:
    """What both sides of a backfill comparison shared."""
    return {
        "rows": rows,
        "rounds": rounds,
        "batch_size": config.database.batch_size,
        "journal_mode": config.database.journal_mode,
        "synchronous": config.database.synchronous,
    }


def run(rows: int, rounds: int, with_split: bool = False) -> dict[str, Any]:
    logs.configure(level="WARNING")  # a log line per batch would be measured too
    config = build_config({}, "bench")
    settings = Settings.resolve(config, build_identity(DEFAULT_IDENTITY, "bench", {}))
    ceilings: list[Timing] = []
    runs: list[Timing] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            ceilings.append(ceiling(Path(tmp) / f"ceiling{i}.db", rows, settings))
            runs.append(ours(Path(tmp) / f"ours{i}.db", rows, settings))
        parts = split(Path(tmp) / "split.db", rows, settings) if with_split else None
    ceiling_rate = rows / median([t.wall for t in ceilings])
    ours_rate = rows / median([t.wall for t in runs])
    ceiling_cpu, ours_cpu = median([t.cpu for t in ceilings]), median([t.cpu for t in runs])
    result: dict[str, Any] = {
        **conditions(config, rows, rounds),
        "ceiling_rows_per_s": round(ceiling_rate),
        "backfill_rows_per_s": round(ours_rate),
        "ratio": round(ours_rate / ceiling_rate, 3),
        "target_ratio": TARGET_RATIO,
        "simulated_days_per_s": round(ours_rate / 86_400, 2),
        "ceiling_cpu_us_per_row": round(ceiling_cpu / rows * 1e6, 3),
        "backfill_cpu_us_per_row": round(ours_cpu / rows * 1e6, 3),
        "cpu_ratio": round(ceiling_cpu / ours_cpu, 3),
        "backfill_cores_used": round(sum(t.cpu for t in runs) / sum(t.wall for t in runs), 2),
        "host_idle_share": round(
            sum(t.host_idle for t in runs) / max(sum(t.host_total for t in runs), 1e-9), 3
        ),
    }
    if parts is not None:
        result["split"] = parts
    return result


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--rows", type=int, default=1_000_000)
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--split", action="store_true", help="also time the parts one by one")
    options = args.parse_args()
    rows, rounds = (50_000, 1) if options.smoke else (options.rows, options.rounds)
    result = run(rows, rounds, options.split)
    path = save("backfill", result, options.out)
    print(
        f"backfill: {result['backfill_rows_per_s']:,} rows/s  "
        f"ceiling: {result['ceiling_rows_per_s']:,} rows/s  "
        f"ratio: {result['ratio']} (target ≥ {result['target_ratio']})  "
        f"CPU ratio: {result['cpu_ratio']}  host idle: {result['host_idle_share']:.0%}  → {path}"
    )
    for part, figures in result.get("split", {}).items():
        print(
            f"  {part:13s} {figures['cpu_us_per_row']:6.3f} µs/row CPU  "
            f"{figures['wall_share']:6.1%} of the wall time"
        )


if __name__ == "__main__":
    main()
