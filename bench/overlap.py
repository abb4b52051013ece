"""Does making the next block while the current one is written speed a backfill up here?

Python's ``sqlite3`` releases the GIL while SQLite steps a statement: each row inside
``executemany``, and the whole ``COMMIT``. This times the sequential backfill (generate,
build rows, insert, commit, block after block) against ways of overlapping generation with
insertion in a second thread, on one connection with the node's schema and pragmas, the
variants interleaved round by round. Each variant's figure is the median over the rounds
of its time divided into the sequential path's time of the same round (above 1: faster).
``host_idle_share`` says how much of the host's CPU stood idle meanwhile: an overlap can
only gain where a core has time to give. Not part of ``python -m bench``: it measures a
design choice (docs/footprint.md, "Backfill: where the time goes"), not the node.

    python -m bench.overlap [--rows N] [--rounds R] [--smoke]
"""

from __future__ import annotations

import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sensorfleet import logs
from sensorfleet.node.config import build_config
from sensorfleet.node.generator import SensorGenerator, Settings
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.readings import Row
from sensorfleet.node.store import INSERT_SQL, ensure_schema, open_connection

from ._common import parser, save
from .containers import host_cpu

START = 1_700_000_000.0
Rows = Iterable[Row]


class Plan:
    """One backfill to time: ``rows`` readings of the bench sensor in batches."""

    def __init__(self, settings: Settings, rows: int) -> None:
        self.settings = settings
        batch = settings.config.database.batch_size
        self.counts = [min(batch, rows - i) for i in range(0, rows, batch)]

    def generator(self) -> SensorGenerator:
        return SensorGenerator(self.settings, 1, START)


def _write(conn: Any, rows: Rows, before_commit: Callable[[], object] | None = None) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_SQL, rows)
    if before_commit is not None:
        before_commit()
    conn.execute("COMMIT")


def sequential(conn: Any, plan: Plan) -> None:
    """The node's way: each block made, then written."""
    generator = plan.generator()
    for count in plan.counts:
        _write(conn, generator.generate(count).iter_rows())


def _threaded(
    conn: Any, plan: Plan, make: Callable[[SensorGenerator, int], Rows], commit_only: bool
) -> None:
    """A thread makes blocks into a queue of one; with ``commit_only`` it starts each next
    block only when the writer begins a commit (SQLite holds no GIL then)."""
    generator = plan.generator()
    blocks: queue.Queue[Rows | BaseException | None] = queue.Queue(maxsize=1)
    turn = threading.Semaphore(1)

    def produce() -> None:
        try:
            for count in plan.counts:
                if commit_only:
                    turn.acquire()
                blocks.put(make(generator, count))
        except BaseException as exc:  # handed to the writer, which raises it
            blocks.put(exc)
            return
        blocks.put(None)

    worker = threading.Thread(target=produce, name="overlap-producer")
    worker.start()
    try:
        while (item := blocks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            _write(conn, item, turn.release if commit_only else None)
    finally:
        worker.join()


def _rows(generator: SensorGenerator, count: int) -> Rows:
    return generator.generate(count).rows()


def _lazy_rows(generator: SensorGenerator, count: int) -> Rows:
    return generator.generate(count).iter_rows()


def _with_switch_interval(seconds: float, action: Callable[[], None]) -> None:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        action()
    finally:
        sys.setswitchinterval(previous)


VARIANTS: dict[str, Callable[[Any, Plan], None]] = {
    "sequential": sequential,
    "thread makes the rows": lambda c, p: _threaded(c, p, _rows, False),
    "thread only generates": lambda c, p: _threaded(c, p, _lazy_rows, False),
    "thread works during commits": lambda c, p: _threaded(c, p, _rows, True),
    "the same, switch interval 0.2 ms": lambda c, p: _with_switch_interval(
        2e-4, lambda: _threaded(c, p, _rows, True)
    ),
}


def run(rows: int, rounds: int) -> dict[str, Any]:
    logs.configure(level="WARNING")
    config = build_config({}, "bench")
    plan = Plan(Settings.resolve(config, build_identity(DEFAULT_IDENTITY, "bench", {})), rows)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    busy, total = host_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for number, (name, variant) in enumerate(VARIANTS.items()):
                conn = open_connection(Path(tmp) / f"{number}-{i}.db", config.database)
                ensure_schema(conn)
                started = time.perf_counter()
                variant(conn, plan)
                seconds[name].append(time.perf_counter() - started)
                conn.close()
    busy_after, total_after = host_cpu()
    base = seconds["sequential"]
    return {
        "rows": rows,
        "rounds": rounds,
        "batch_size": config.database.batch_size,
        "speed_vs_sequential": {
            name: round(statistics.median(b / t for b, t in zip(base, times, strict=True)), 3)
            for name, times in seconds.items()
        },
        "sequential_rows_per_s": round(rows / statistics.median(base)),
        "host_idle_share": round(
            max(0.0, (total_after - total) - (busy_after - busy)) / (total_after - total), 3
        ),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--rows", type=int, default=50_000)
    args.add_argument("--rounds", type=int, default=21)
    options = args.parse_args()
    rows, rounds = (10_000, 2) if options.smoke else (options.rows, options.rounds)
    result = run(rows, rounds)
    path = save("overlap", result, options.out)
    for name, speed in result["speed_vs_sequential"].items():
        print(f"{name:34s} {speed:.3f} × sequential")
    print(f"host idle: {result['host_idle_share']:.0%}  → {path}")


if __name__ == "__main__":
    main()
