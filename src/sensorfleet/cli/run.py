"""``sensorfleet run``: simulate one sensor (or many) into SQLite, live or as backfill.

Arguments in, exit status out: the node itself is ``sensorfleet.run.run_node``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import logs
from ..node.clock import parse_duration, parse_instant
from ..node.config import Override
from ..node.inputs import DEFAULT_CONFIG, DEFAULT_IDENTITY, NodeInputs
from ..run import RunPlan, run_node


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


def handle(args: argparse.Namespace) -> int:
    inputs = NodeInputs.locate(args.config, args.identity, _flag_overrides(args))
    plan = RunPlan(
        backfill_seconds=parse_duration(args.backfill, "--backfill") if args.backfill else None,
        start=parse_instant(args.start) if args.start else None,
        follow=args.follow,
        run_time_set=args.run_time is not None,
    )
    result = run_node(inputs, plan, stop_on_signals=True)
    return result.exit_status
