"""``sensorfleet sync``: ship ``synced = 0`` rows from node databases to a central sink."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import structlog

from .. import logs
from ..errors import InputError, SensorfleetError
from ..node.clock import parse_duration
from ..node.config import Database
from ..sync.collector import Collector, SyncOptions
from ..sync.cursor import CursorStore
from ..sync.features import parse_features
from ..sync.metrics import SyncMetrics
from ..sync.sink_url import parse_sink_url
from ..sync.sinks.base import SinkError
from ..sync.sinks.postgres import PostgresSink
from ..sync.sinks.sqlite import SQLiteSink

log = structlog.get_logger("sensorfleet.sync")

DEFAULT_SINK = "sqlite:///central.db"
MAX_BATCH = 100_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="ship unsynced rows from node databases to a central store",
        description=(
            "Ship synced = 0 rows from node databases (files, or folders of *.db) to a "
            "central sink, exactly once per (database id, row id), while nodes keep writing."
        ),
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="node database files, or folders whose *.db/*.sqlite files are followed",
    )
    parser.add_argument(
        "--sink",
        metavar="URL",
        help="sqlite:///PATH, postgresql://…, jsonl:///DIR, csv:///DIR, http(s)://…, "
        "mqtt://HOST:PORT/TOPIC, kafka://HOST:PORT/TOPIC, or - for JSON lines on stdout; "
        "topics may hold {sensor_id}, {location}, … "
        f"(default: $SYNC_SINK or {DEFAULT_SINK})",
    )
    parser.add_argument("--once", action="store_true", help="drain what is there now, then exit")
    parser.add_argument(
        "--interval",
        metavar="DURATION",
        default="5s",
        help="longest pause between polls; following also wakes when a node file's WAL "
        "changes (5s)",
    )
    parser.add_argument(
        "--watch-interval",
        metavar="DURATION",
        default="50ms",
        help="following: how often to stat each node file's WAL for new commits; "
        "0 = poll only every --interval (50ms)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=5000, metavar="N", help="rows per batch (5000)"
    )
    parser.add_argument(
        "--features",
        metavar="SETS",
        help="add derived features to each stream record: time, ratios, rolling "
        "(comma-separated) or all; JSON sinks only",
    )
    parser.add_argument(
        "--cursor",
        metavar="FILE",
        help="read-only mode: never write node files, keep a high-water mark per database here",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus /metrics on this port (0 = any free port)",
    )
    parser.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST", help="address for /metrics"
    )
    parser.add_argument(
        "--log-interval",
        metavar="DURATION",
        default="10s",
        help="how often to log rows/s and backlog per source (10s)",
    )
    parser.add_argument(
        "--sink-timeout",
        metavar="DURATION",
        default="10s",
        help="connect/answer timeout of network sinks (10s)",
    )
    parser.add_argument(
        "--busy-timeout-ms",
        type=int,
        default=5000,
        metavar="MS",
        help="how long to wait for a node's write lock when marking rows (5000)",
    )
    parser.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        type=str.upper,
        default="INFO",
        help="log level (INFO)",
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="log style on stderr: auto (readable on a terminal, JSON otherwise), json, console",
    )
    parser.set_defaults(handler=handle)


def _options(args: argparse.Namespace) -> SyncOptions:
    problems: list[str] = []
    if not 1 <= args.batch_size <= MAX_BATCH:
        problems.append(f"--batch-size: must be between 1 and {MAX_BATCH} (got {args.batch_size})")
    if args.busy_timeout_ms < 0:
        problems.append(f"--busy-timeout-ms: must be at least 0 (got {args.busy_timeout_ms})")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        problems.append(f"--metrics-port: must be between 0 and 65535 (got {args.metrics_port})")
    durations: dict[str, float] = {}
    if args.watch_interval.strip() in ("0", "0s", "0ms"):
        args.watch_interval = None
    for flag in ("interval", "log_interval", "sink_timeout", "watch_interval"):
        if getattr(args, flag) is None:
            durations[flag] = 0.0
            continue
        try:
            durations[flag] = parse_duration(getattr(args, flag), "--" + flag.replace("_", "-"))
        except InputError as exc:
            problems.extend(exc.problems)
    if args.once:
        for source in args.sources:
            if not Path(source).exists():
                problems.append(f"{source}: no such file or folder")
    features: frozenset[str] = frozenset()
    if args.features is not None:
        try:
            features = parse_features(args.features)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return SyncOptions(
        batch_size=args.batch_size,
        interval=durations["interval"],
        once=args.once,
        log_interval=durations["log_interval"],
        watch_interval=durations["watch_interval"],
        database=Database(busy_timeout_ms=max(args.busy_timeout_ms, 0)),
        features=features,
    )


def _refuse_source_as_sink(central: Path, sources: list[str], name: str) -> None:
    """A central file that is also a named source would be skipped as one: refuse it."""
    for source in sources:
        path = Path(source)
        same = os.path.realpath(path) == os.path.realpath(central)
        if not same and path.exists() and central.exists():
            same = os.path.samefile(path, central)
        if same:
            raise InputError(
                [
                    f"--sink {name}: is the source file {source} itself; "
                    "expected a separate central file"
                ]
            )


def _sends_records(sink: object) -> bool:
    """Whether a sink ships each reading as a JSON record (where features can go)."""
    return not isinstance(sink, (SQLiteSink, PostgresSink)) and getattr(sink, "fmt", "") != "csv"


def handle(args: argparse.Namespace) -> int:
    options = _options(args)
    timeout = parse_duration(args.sink_timeout, "--sink-timeout")
    sink = parse_sink_url(args.sink or os.environ.get("SYNC_SINK") or DEFAULT_SINK, timeout)
    if options.features and not _sends_records(sink):
        raise InputError(
            [
                f"--features: {sink.name} stores the node's columns as they are; derived "
                "features go to JSON records (-, jsonl, http, mqtt, kafka)"
            ]
        )
    cursor = CursorStore(Path(args.cursor)) if args.cursor else None
    for problem in logs.configure(args.log_level, None, True, args.log_format):
        log.warning("logging degraded", problem=problem)
    exclude = [Path(args.cursor)] if args.cursor else []
    if isinstance(sink, SQLiteSink):
        _refuse_source_as_sink(sink.path, args.sources, sink.name)
        exclude.append(sink.path)  # a central file inside a source folder is not a source
    metrics = SyncMetrics()
    collector = Collector(
        [Path(s) for s in args.sources], sink, options, cursor, metrics, exclude=exclude
    )
    if args.metrics_port is not None:
        try:
            server = metrics.serve(args.metrics_host, args.metrics_port)
        except OSError as exc:
            raise SensorfleetError(
                f"--metrics-port {args.metrics_port}: cannot listen on "
                f"{args.metrics_host}: {exc.strerror}"
            ) from None
        log.info("metrics serving", host=args.metrics_host, port=server.server_port)

    stop_signals: list[str] = []

    def request_stop(signum: int, _frame: object) -> None:
        # Only a flag and a wake-up, no lock and no logging (the interrupted code may hold
        # them): the batch in flight finishes and is marked first.
        stop_signals.append(signal.Signals(signum).name)
        collector.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        summary = collector.run()
    except SinkError as exc:
        raise SensorfleetError(f"cannot use sink: {exc}") from None
    finally:
        if stop_signals:
            log.info("stop requested", signal=stop_signals[0])
    log.info(
        "sync finished",
        rows=summary.rows_shipped,
        rows_stored=summary.rows_stored,
        conflicts=summary.conflicts,
        batches=summary.batches,
        seconds=round(summary.seconds, 3),
        rows_per_second=round(summary.rows_shipped / max(summary.seconds, 1e-9), 1),
        sink_errors=summary.sink_errors,
        source_errors=summary.source_errors,
        failed_sources=len(summary.failed_sources),
    )
    if summary.failed_sources:
        raise SensorfleetError("\n".join(summary.failed_sources))
    return 0
