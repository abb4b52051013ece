"""Sync collector throughput and poll latency, each beside a baseline measured in the same run.

1. Drain: 10 node databases written by real ``sensorfleet run`` processes,
   1,000,000 unsynced rows in all, shipped by the collector (``--once``
   semantics) into the central SQLite sink while the nodes keep writing live.
   Baseline: a raw SQLite copy of the same rows between the same files
   (``ATTACH`` + ``INSERT … SELECT`` into the same central schema), no collector,
   once before and once after the drain (their mean is the baseline).
   Target: ≥ 50,000 rows/s, and ≥ 0.5 × the plain copy.
   Then the same rows (made unsynced again) go to Kafka (a tansu broker on
   loopback): sync's Kafka sink beside a raw confluent-kafka producer that
   reads the same rows with plain SQL, turns each into the same JSON and
   produces it with the same settings, flushing once at the end.
   Target: ≥ 0.5 × the raw producer.
2. Poll: one ``WHERE synced = 0 ORDER BY id LIMIT 100`` on a 10,000,000-row
   node table that is 99.9 % synced (built with a recursive CTE, not the
   node), in a poll-then-mark loop. Baseline: the same query made to scan the
   table (``NOT INDEXED``), i.e. without the partial index. Target: < 5 ms.

    python -m bench.sync [--nodes N] [--rows-per-node N] [--table-rows N] [--no-kafka] [--smoke]
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sensorfleet import logs
from sensorfleet.node import store
from sensorfleet.node.config import Database
from sensorfleet.node.readings import COLUMNS
from sensorfleet.sync.collector import Collector, SyncOptions
from sensorfleet.sync.sink_url import parse_sink_url
from sensorfleet.sync.sinks.base import CENTRAL_COLUMNS
from sensorfleet.sync.sinks.sqlite import SQLiteSink
from sensorfleet.sync.source import MARK_SYNCED, READ_UNSYNCED

from ._common import median, parser, save
from ._kafka import Broker, broker

LIVE_RATE = 100.0  # readings/s each node keeps writing during the drain
POLL_ROWS = 100


# -- drain ---------------------------------------------------------------------


def node_env() -> dict[str, str]:
    """Quiet real nodes and collectors: no log file, no HTTP, no reload, no outside config."""
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        LOG_FILE="null",
        LOG_LEVEL="WARNING",
        MONITORING_ENABLED="false",
        CONFIG_RELOAD_ENABLED="false",
    )
    for key in ("CONFIG_FILE", "IDENTITY_FILE", "SYNC_SINK"):
        env.pop(key, None)
    return env


def start_nodes(
    folder: Path, nodes: int, rows_per_node: int = 0, rate: float = LIVE_RATE
) -> list[subprocess.Popen[bytes]]:
    """Real nodes writing ``rate`` readings/s live, after ``rows_per_node`` rows of history."""
    history = ["--backfill", f"{rows_per_node / rate:.3f}s", "--follow"] if rows_per_node else []
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sensorfleet",
                "run",
                "--db",
                str(folder / f"node-{i}.db"),
                "--seed",
                str(i),
                "--readings-per-second",
                str(rate),
                *history,
            ],
            cwd=folder,
            env={**node_env(), "SENSOR_ID": f"BENCH_{i:02d}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(nodes)
    ]


def newest_id(db: Path) -> int:
    try:
        with contextlib.closing(store.open_connection(db, Database(), "read")) as conn:
            return int(
                conn.execute("SELECT coalesce(max(id), 0) FROM sensor_readings").fetchone()[0]
            )
    except sqlite3.Error:
        return 0


def wait_for_rows(dbs: list[Path], rows: int, procs: list[subprocess.Popen[bytes]]) -> float:
    started = time.perf_counter()
    while any(newest_id(db) < rows for db in dbs):
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a node stopped before writing its history")
        time.sleep(0.2)
    return time.perf_counter() - started


def baseline_copy(bounds: dict[Path, int], target: Path) -> tuple[int, float]:
    """Copy rows up to ``bounds`` into the central schema with plain SQL; (rows, seconds)."""
    sink = SQLiteSink(target)
    sink.open()  # same schema and pragmas as the collector's destination
    sink.close()
    columns = ", ".join(COLUMNS)
    copied = 0
    conn = store.open_connection(target, sink.settings)
    started = time.perf_counter()
    for db, newest in bounds.items():
        conn.execute("ATTACH DATABASE ? AS node", (f"file:{db}?mode=ro",))
        with store.transaction(conn):
            copied += conn.execute(
                f"INSERT INTO sensor_readings (database_id, source_row_id, {columns}, received_at) "
                f"SELECT m.database_id, r.id, {', '.join('r.' + c for c in COLUMNS)}, "
                "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                "FROM node.sensor_readings AS r, node.sensorfleet_meta AS m WHERE r.id <= ?",
                (newest,),
            ).rowcount
        conn.execute("DETACH DATABASE node")
    seconds = time.perf_counter() - started
    conn.close()
    return copied, seconds


def raw_produce(kafka: Broker, bounds: dict[Path, int], topic: str) -> tuple[int, float]:
    """The baseline: the same rows read with plain SQL, the same JSON, the same producer
    settings, one flush at the end; (rows, seconds)."""
    from confluent_kafka import Producer

    from sensorfleet.sync.sinks.kafka import DEFAULTS, REQUIRED

    producer = Producer({"bootstrap.servers": kafka.bootstrap, **DEFAULTS, **REQUIRED})
    key_at = CENTRAL_COLUMNS.index("sensor_id")
    produced = 0
    started = time.perf_counter()
    for db, newest in bounds.items():
        with contextlib.closing(store.open_connection(db, Database(), "read")) as conn:
            (database_id,) = conn.execute("SELECT database_id FROM sensorfleet_meta").fetchone()
            cursor = conn.execute(
                f"SELECT ?, id, {', '.join(COLUMNS)}, ? FROM sensor_readings "
                "WHERE id <= ? ORDER BY id",
                (database_id, "2026-01-01T00:00:00.000000Z", newest),
            )
            while rows := cursor.fetchmany(5000):
                for row in rows:
                    value = json.dumps(dict(zip(CENTRAL_COLUMNS, row, strict=True)),
                                       separators=(",", ":"))  # fmt: skip
                    while True:
                        try:
                            producer.produce(topic, value, row[key_at])
                            break
                        except BufferError:
                            producer.poll(0.05)
                produced += len(rows)
                producer.poll(0)
    if producer.flush(60):
        raise SystemExit("raw producer: messages left undelivered")
    return produced, time.perf_counter() - started


def kafka_drain(folder: Path, bounds: dict[Path, int], batch_size: int) -> dict[str, Any]:
    """Sync's Kafka sink and the raw producer on the same rows, in the same run."""
    for db in bounds:  # the SQLite drain marked them: ship them again
        conn = store.open_connection(db, Database(), "write")
        with contextlib.closing(conn), store.transaction(conn):
            conn.execute("UPDATE sensor_readings SET synced = 0")
    with broker() as kafka:
        raw_rows, raw_seconds = raw_produce(kafka, bounds, kafka.create_topic("raw"))
        sink = parse_sink_url(f"kafka://{kafka.bootstrap}/{kafka.create_topic('sync')}")
        options = SyncOptions(batch_size=batch_size, once=True, log_interval=3600)
        summary = Collector([folder], sink, options).run()
    if summary.failed_sources or summary.sink_errors:
        raise SystemExit(f"collector trouble (Kafka): {summary}")
    ours, raw = summary.rows_shipped / summary.seconds, raw_rows / raw_seconds
    return {
        "rows_shipped": summary.rows_shipped,
        "seconds": round(summary.seconds, 3),
        "rows_per_s": round(ours),
        "baseline_rows": raw_rows,
        "baseline_seconds": round(raw_seconds, 3),
        "baseline_rows_per_s": round(raw),
        "ratio_to_baseline": round(ours / raw, 3),
        "target_ratio": 0.5,
    }


def drain(nodes: int, rows_per_node: int, batch_size: int, kafka: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        dbs = [folder / f"node-{i}.db" for i in range(nodes)]
        procs = start_nodes(folder, nodes, rows_per_node)
        try:
            setup_s = wait_for_rows(dbs, rows_per_node, procs)
            bounds = {db: newest_id(db) for db in dbs}
            # The baseline runs before and after the drain (same rows, same load of
            # writing nodes) so a change in machine load between them shows.
            before = baseline_copy(bounds, Path(tmp) / "baseline-1.db")
            options = SyncOptions(batch_size=batch_size, once=True, log_interval=3600)
            collector = Collector([folder], SQLiteSink(Path(tmp) / "central.db"), options)
            summary = collector.run()
            alive = sum(p.poll() is None for p in procs)
            after = baseline_copy(bounds, Path(tmp) / "baseline-2.db")
            to_kafka = kafka_drain(folder, bounds, batch_size) if kafka else None
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(60)
        if summary.failed_sources or summary.sink_errors:
            raise SystemExit(f"collector trouble: {summary}")
    ours = summary.rows_shipped / summary.seconds
    rates = [rows / seconds for rows, seconds in (before, after)]
    base = sum(rates) / 2
    return {
        "nodes": nodes,
        "rows_per_node_history": rows_per_node,
        "live_rows_per_s_per_node": LIVE_RATE,
        "nodes_alive_during_drain": alive,
        "setup_seconds": round(setup_s, 1),
        "batch_size": batch_size,
        "rows_shipped": summary.rows_shipped,
        "seconds": round(summary.seconds, 3),
        "rows_per_s": round(ours),
        "target_rows_per_s": 50_000,
        "baseline_rows": before[0],
        "baseline_rows_per_s_before_after": [round(r) for r in rates],
        "baseline_rows_per_s": round(base),
        "ratio_to_baseline": round(ours / base, 3),
        "target_ratio": 0.5,
        "kafka": to_kafka,
    }


# -- poll ------------------------------------------------------------------------


def build_table(path: Path, rows: int, unsynced_every: int = 1000) -> float:
    """A node file of ``rows`` readings, one in ``unsynced_every`` unsynced; seconds taken."""
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = off")
    conn.execute("PRAGMA synchronous = off")
    conn.execute("PRAGMA cache_size = -512000")
    create_table = store.SCHEMA.split(";")[0]
    conn.execute(create_table)
    conn.execute("BEGIN")
    conn.execute(
        f"""
        INSERT INTO sensor_readings ({", ".join(COLUMNS)}, synced)
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i, 'unixepoch'),
               'SENSOR_' || (i % 10), 60.0 + (i % 97) * 0.1, 2.0 + (i % 13) * 0.05,
               12.0 + (i % 5) * 0.01, 0, 0, NULL, '1.4', 'TempVibe-2000', 'SensorTech',
               'Factory A - Line ' || (i % 10), CASE WHEN i % ? = 0 THEN 0 ELSE 1 END
        FROM n
        """,
        (rows, unsynced_every),
    )
    conn.execute("COMMIT")
    store.ensure_schema(conn)  # the node's indexes (incl. the partial one) and meta row
    conn.execute("PRAGMA journal_mode = wal")
    conn.close()
    return time.perf_counter() - started


def poll(table_rows: int, cycles: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        path = Path(tmp) / "big.db"
        build_s = build_table(path, table_rows)
        size_mb = path.stat().st_size / 1048576
        conn = store.open_connection(path, Database(), "write")
        cycles = min(cycles, table_rows // 1000 // POLL_ROWS)  # each cycle marks 100 rows
        # Baseline first, while the unsynced rows are where they are for our first poll.
        scan_sql = READ_UNSYNCED.replace("FROM sensor_readings", "FROM sensor_readings NOT INDEXED")
        scans = []
        for _ in range(3):
            started = time.perf_counter()
            assert len(conn.execute(scan_sql, (0, POLL_ROWS)).fetchall()) == POLL_ROWS
            scans.append(time.perf_counter() - started)
        polls, marks, first = [], [], None
        for _ in range(cycles):
            started = time.perf_counter()
            rows = conn.execute(READ_UNSYNCED, (0, POLL_ROWS)).fetchall()
            elapsed = time.perf_counter() - started
            first = elapsed if first is None else first
            polls.append(elapsed)
            ids = [r[0] for r in rows]
            assert len(ids) == POLL_ROWS
            started = time.perf_counter()
            with store.transaction(conn):
                conn.execute(MARK_SYNCED.format(marks=", ".join("?" * len(ids))), ids)
            marks.append(time.perf_counter() - started)
        conn.close()
    polls_sorted = sorted(polls)
    ours_ms, scan_ms = median(polls) * 1000, median(scans) * 1000
    return {
        "table_rows": table_rows,
        "unsynced_share": 0.001,
        "file_mb": round(size_mb),
        "build_seconds": round(build_s, 1),
        "poll_rows": POLL_ROWS,
        "cycles": cycles,
        "first_poll_ms": round((first or 0) * 1000, 3),
        "median_poll_ms": round(ours_ms, 3),
        "p95_poll_ms": round(polls_sorted[int(0.95 * (len(polls) - 1))] * 1000, 3),
        "max_poll_ms": round(polls_sorted[-1] * 1000, 3),
        "median_mark_ms": round(median(marks) * 1000, 3),
        "target_ms": 5.0,
        "baseline_scan_ms": round(scan_ms, 3),
        "baseline_over_ours": round(scan_ms / ours_ms, 1),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--nodes", type=int, default=10)
    args.add_argument("--rows-per-node", type=int, default=100_000)
    args.add_argument("--batch-size", type=int, default=5000)
    args.add_argument("--table-rows", type=int, default=10_000_000)
    args.add_argument("--cycles", type=int, default=50)
    args.add_argument("--no-kafka", action="store_true", help="skip the Kafka drain")
    options = args.parse_args()
    if options.smoke:
        options.nodes, options.rows_per_node = 3, 2000
        options.table_rows, options.cycles = 1_000_000, 10
    logs.configure("WARNING", None, True, "console")
    d = drain(options.nodes, options.rows_per_node, options.batch_size, not options.no_kafka)
    k = d["kafka"] or {}
    p = poll(options.table_rows, options.cycles)
    result = {
        # Headline figures first (flat, for summaries), then every detail.
        "drain_rows_per_s": d["rows_per_s"],
        "drain_target_rows_per_s": d["target_rows_per_s"],
        "drain_baseline_rows_per_s": d["baseline_rows_per_s"],
        "drain_ratio_to_baseline": d["ratio_to_baseline"],
        "kafka_rows_per_s": k.get("rows_per_s"),
        "kafka_baseline_rows_per_s": k.get("baseline_rows_per_s"),
        "kafka_ratio_to_baseline": k.get("ratio_to_baseline"),
        "poll_median_ms": p["median_poll_ms"],
        "poll_target_ms": p["target_ms"],
        "poll_baseline_scan_ms": p["baseline_scan_ms"],
        "smoke": options.smoke,
        "drain": d,
        "poll": p,
    }
    path = save("sync", result, options.out)
    print(
        f"sync drain: {d['rows_per_s']:,} rows/s ({d['rows_shipped']:,} rows from {d['nodes']} "
        f"writing nodes; target ≥ {d['target_rows_per_s']:,})  baseline SQL copy: "
        f"{d['baseline_rows_per_s']:,} rows/s  ratio: {d['ratio_to_baseline']}"
    )
    if k:
        print(
            f"sync to Kafka: {k['rows_per_s']:,} rows/s ({k['rows_shipped']:,} rows)  baseline "
            f"raw confluent-kafka produce: {k['baseline_rows_per_s']:,} rows/s  ratio: "
            f"{k['ratio_to_baseline']} (target ≥ 0.5)"
        )
    print(
        f"sync poll: median {p['median_poll_ms']} ms, p95 {p['p95_poll_ms']} ms, first "
        f"{p['first_poll_ms']} ms for {p['poll_rows']} rows in {p['table_rows']:,} rows "
        f"(target < {p['target_ms']} ms)  baseline table scan: {p['baseline_scan_ms']} ms "
        f"({p['baseline_over_ours']}x)  → {path}"
    )


if __name__ == "__main__":
    main()
