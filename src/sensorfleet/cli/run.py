"""``sensorfleet run``: simulate one sensor (or many) into SQLite, live or as backfill."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from .. import logs
from ..edges.faces import face_problems, start_faces
from ..edges.monitor import start_monitor
from ..edges.watcher import Sources, start_reloader
from ..errors import InputError, SensorfleetError
from ..node.clock import SystemClock, check_span, format_instant, parse_duration, parse_instant
from ..node.config import Config, Override, environment_overrides, load_config
from ..node.identity import Identity, environment_identity, load_identities, load_identity
from ..node.loop import NodeLoop, build_sensors, run_summary_fields
from ..node.retention import RetentionWorker

if TYPE_CHECKING:
    from ..edges.faces.base import Face

log = structlog.get_logger("sensorfleet.run")

DEFAULT_CONFIG = "config.yaml"
DEFAULT_IDENTITY = "node_identity.json"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run simulated sensors (live, or --backfill history)",
        description="Simulate industrial sensors and write their readings to SQLite.",
    )
    add_run_arguments(parser)
    parser.set_defaults(handler=handle)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` options (shared with the top-level ``main.py``)."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"config file (default: $CONFIG_FILE, else ./{DEFAULT_CONFIG} if present, "
        "else the built-in defaults)",
    )
    parser.add_argument(
        "--identity",
        metavar="PATH",
        nargs="+",
        action="extend",
        help="identity file(s) or folder(s) of *.json "
        f"(default: $IDENTITY_FILE or ./{DEFAULT_IDENTITY})",
    )
    parser.add_argument("--seed", type=int, help="random seed (same seed → same rows)")
    parser.add_argument("--db", metavar="PATH", help="database file (may contain {sensor_id})")
    parser.add_argument(
        "--run-time",
        metavar="DURATION",
        help="stop after this long (e.g. 60, 90s, 2h; 0 = until stopped)",
    )
    parser.add_argument(
        "--readings-per-second", type=float, metavar="RATE", help="readings per second per sensor"
    )
    parser.add_argument(
        "--backfill",
        metavar="DURATION",
        help="generate this much history (e.g. 2h, 7d) as fast as possible",
    )
    parser.add_argument(
        "--start",
        metavar="ISO8601",
        help="with --backfill: history starts here instead of ending now",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="with --backfill: continue live where the history ends",
    )
    parser.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        type=str.upper,
        help="log level (default: logging.level of the config, INFO)",
    )


def _flag_overrides(args: argparse.Namespace) -> list[Override]:
    found = []
    if args.seed is not None:
        found.append(Override("simulation.seed", args.seed, "--seed"))
    if args.db is not None:
        found.append(Override("database.path", args.db, "--db"))
    if args.run_time is not None:
        seconds = (
            0.0 if args.run_time.strip() == "0" else parse_duration(args.run_time, "--run-time")
        )
        found.append(Override("simulation.run_time_seconds", seconds, "--run-time"))
    if args.readings_per_second is not None:
        found.append(
            Override(
                "simulation.readings_per_second", args.readings_per_second, "--readings-per-second"
            )
        )
    if args.log_level is not None:
        found.append(Override("logging.level", args.log_level, "--log-level"))
    return found


def resolve_config_path(flag: str | None) -> str | None:
    """Flag, then $CONFIG_FILE, then ./config.yaml if present, else built-in defaults."""
    if flag:
        return flag
    if os.environ.get("CONFIG_FILE"):
        return os.environ["CONFIG_FILE"]
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def resolve_identity_paths(flags: list[str] | None) -> list[str] | None:
    """Identity files from flags/$IDENTITY_FILE (folders expanded), or None for the default."""
    chosen = flags or ([os.environ["IDENTITY_FILE"]] if os.environ.get("IDENTITY_FILE") else None)
    if chosen is None:
        return [DEFAULT_IDENTITY] if Path(DEFAULT_IDENTITY).is_file() else None
    paths: list[str] = []
    for item in chosen:
        if Path(item).is_dir():
            found = sorted(str(p) for p in Path(item).glob("*.json"))
            if not found:
                raise InputError([f"{item}: (folder): no *.json identity files in this folder"])
            paths.extend(found)
        else:
            paths.append(item)
    return paths


def load_inputs(
    args: argparse.Namespace,
) -> tuple[str | None, Config, list[tuple[str | None, Identity]]]:
    """Config and identities with every override applied; all problems reported at once."""
    problems: list[str] = []
    config_path = resolve_config_path(args.config)
    config: Config | None = None
    try:
        config = load_config(config_path, [*environment_overrides(), *_flag_overrides(args)])
    except InputError as exc:
        problems.extend(exc.problems)
    identities: list[tuple[str | None, Identity]] = []
    try:
        paths = resolve_identity_paths(args.identity)
        env = environment_identity()
        if paths is None:
            identities = [(None, load_identity(None, env))]
        elif len(paths) == 1:
            identities = [(paths[0], load_identity(paths[0], env))]
        else:
            if "id" in env:
                raise InputError(
                    [
                        "environment SENSOR_ID: cannot give one id to several "
                        "identity files; unset it or pass one identity"
                    ]
                )
            identities = list(zip(paths, load_identities(paths, env), strict=True))
    except InputError as exc:
        problems.extend(exc.problems)
    if config is not None:
        problems.extend(face_problems(config, len(identities)))
    if args.start and not args.backfill:
        problems.append("--start: only meaningful with --backfill")
    if args.follow and not args.backfill:
        problems.append("--follow: only meaningful with --backfill")
    if args.backfill and args.run_time is not None and not args.follow:
        problems.append(
            "--run-time: conflicts with --backfill, which ends once its history is written; "
            "add --follow to run live for --run-time afterwards"
        )
    if config is not None and "{sensor_id}" in config.database.path:
        problems.extend(unsafe_file_name_ids(config.database.path, identities))
    if problems or config is None:
        raise InputError(problems)
    return config_path, config, identities


# A sensor id put into a file name: letters, digits, '.', '_' and '-', starting with a
# letter or digit, so it can never name a folder above ('..') or another folder ('/').
SAFE_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def unsafe_file_name_ids(template: str, identities: list[tuple[str | None, Identity]]) -> list[str]:
    """One problem per identity whose id is not safe in a ``{sensor_id}`` path."""
    return [
        f"{source or 'identity'}: id: {identity.id!r} is not safe as a file name in "
        f"database.path {template!r}; use letters, digits, '.', '_' and '-', starting with a "
        "letter or digit (at most 128)"
        for source, identity in identities
        if not SAFE_FILE_ID.fullmatch(identity.id)
    ]


def _timeline(args: argparse.Namespace, config: Config, now: float) -> tuple[float, float | None]:
    """When the first reading falls and how long history lasts; refuses spans past year 9999."""
    backfill = parse_duration(args.backfill, "--backfill") if args.backfill else None
    start = parse_instant(args.start) if args.start else None
    first = (start if start is not None else now - backfill) if backfill else now
    end = first + (backfill or 0.0)
    run_time = config.simulation.run_time_seconds
    if run_time and (not backfill or args.follow):
        end += run_time
    what = "--start/--backfill" if start is not None else ("--backfill" if backfill else "run time")
    check_span(first, end, what)
    return first, backfill


def handle(args: argparse.Namespace) -> int:
    config_path, config, identities = load_inputs(args)
    clock = SystemClock()
    now = clock.now()
    first, backfill = _timeline(args, config, now)
    settings = config.logging
    for problem in logs.configure(
        settings.level, settings.file, settings.console_output, settings.format
    ):
        log.warning("logging degraded", problem=problem)
    for warning in config.warnings():
        log.warning("config warning", problem=warning, config=config_path or "defaults")
    seed = config.simulation.seed
    if seed is None:
        seed = secrets.randbits(63)
    try:
        sensors = build_sensors(config, identities, seed, first)
    except (sqlite3.Error, OSError) as exc:
        raise SensorfleetError(f"{config.database.path}: cannot open database: {exc}") from None
    loop = NodeLoop(config, sensors, clock)
    log.info(
        "node starting",
        sensors=len(sensors),
        seed=seed,
        config=config_path or "defaults",
        config_hash=config.digest(),
        database=config.database.path,
        readings_per_second=config.simulation.readings_per_second,
        sensor_id=sensors[0].identity.id if len(sensors) == 1 else None,
        mode="backfill" if backfill else "live",
        start=format_instant(first),
    )
    _install_signal_handlers(loop)
    # Edges: the HTTP endpoint reads counters and submits commands; the watcher
    # submits reloads (not for a one-off backfill, whose history has one setting).
    reloader = None
    if not backfill or args.follow:
        sources = Sources(
            config_path,
            (*environment_overrides(), *_flag_overrides(args)),
            tuple(path for path, _ in identities if path is not None),
            environment_identity(),
        )
        reloader = start_reloader(loop, sources, config.config_reload)
    monitoring = config.monitoring
    monitor = None
    if monitoring.enabled:
        reloads = reloader.stats if reloader is not None else None
        monitor = start_monitor(loop, reloads, monitoring.host, monitoring.port)
    retention = None
    if RetentionWorker.wanted(config.database):
        # Deletes only rows a collector marked synced; its own connection and thread.
        retention = RetentionWorker([s.writer.store.path for s in sensors], config.database)
        retention.start()
    status = 0
    faces: list[Face] = []
    try:
        if backfill:
            loop.backfill(first + backfill)
        if not backfill or args.follow:
            # OPC UA / Modbus serve live readings only; each binds on its own thread.
            faces = start_faces(config, [identity for _, identity in identities])
            for face in faces:
                loop.add_listener(face)
            run_time = config.simulation.run_time_seconds
            live_start = first + backfill if backfill else first
            loop.live(live_start + run_time if run_time else None)
    except SensorfleetError as exc:
        log.error("node giving up", error=str(exc))
        status = 1
    finally:
        if loop.stop_signal is not None:
            log.info("stop requested", signal=loop.stop_signal)
        for edge in (reloader, monitor, retention, *faces):
            if edge is not None:
                edge.stop()
        summary = loop.close()
    if summary.rows_unwritten:
        status = 1
    log.info("run summary", **run_summary_fields(summary))
    return status


def _install_signal_handlers(loop: NodeLoop) -> None:
    def request_stop(signum: int, _frame: object) -> None:
        # Only a flag and a wake-up, no lock and no logging: the code the signal interrupted
        # may hold them. The loop flushes and closes in its own time and says why.
        loop.stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
