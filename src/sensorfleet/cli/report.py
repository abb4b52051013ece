"""``sensorfleet report``: summarise node databases and check them against the config."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..report.pipeline import DEFAULT_WINDOW, FORMATS, ReportOptions, produce_report, write_html
from ..report.table import ReportSource

DEFAULT_CONFIG = "config.yaml"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summarise databases: anomaly rates by firmware/model/manufacturer/location",
        description=(
            "Summarise sensor databases (node files, folders of them, or a central store "
            "written by 'sensorfleet sync', SQLite or PostgreSQL) and compare anomaly rates "
            "and types with what the config and profiles predict."
        ),
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="database file, folder of them, or postgresql://… central store (?table=NAME)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"config the nodes ran with (default: ./{DEFAULT_CONFIG} if present, else defaults)",
    )
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default="text",
        help="what to print on stdout (default: text tables)",
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument(
        "--sensor",
        metavar="ID",
        action="append",
        default=[],
        help="sensor to plot over time in the HTML report (repeatable; default: a few)",
    )
    parser.add_argument(
        "--window",
        metavar="DURATION",
        default=DEFAULT_WINDOW,
        help=f"time plotted per sensor, ending at its last reading (default {DEFAULT_WINDOW}; "
        "'all' for everything)",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        metavar="LEVEL",
        help="confidence for the whole report's intervals at once (default 0.95)",
    )
    parser.add_argument(
        "--readings-per-second",
        type=float,
        metavar="RATE",
        help="reading rate the nodes ran at, if not the config's (sets episode lengths)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )
    parser.set_defaults(handler=handle)


class Progress:
    """One self-overwriting status line on a terminal, or sparse lines otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.tty = stream.isatty()
        self._last = 0.0
        self._width = 0

    def start(self, total: int) -> None:
        self.total = total

    def update(self, index: int, source: ReportSource, stage: str, fraction: float) -> None:
        now = time.monotonic()
        final = fraction >= 1.0
        if not final and now - self._last < (0.1 if self.tty else 2.0):
            return
        self._last = now
        text = f"report: {index + 1}/{self.total} {source.label}: {stage} {fraction:.0%}"
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def _config_path(flag: str | None) -> str | None:
    if flag:
        return flag
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def handle(args: argparse.Namespace) -> int:
    """The flags as ``ReportOptions``, the library call, its output, the exit status."""
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    options = ReportOptions(
        sources=args.sources,
        config=_config_path(args.config),
        format=args.format,
        color=sys.stdout.isatty() and "NO_COLOR" not in os.environ,
        html=args.html,
        sensors=args.sensor,
        window=args.window,
        confidence=args.confidence,
        readings_per_second=args.readings_per_second,
    )
    produced = produce_report(options, Progress(sys.stderr) if show else None)
    sys.stdout.write(produced.text)
    sys.stdout.flush()
    if args.html:
        write_html(produced, args.html)
    if produced.html is not None:
        sys.stderr.write(f"report: wrote {produced.html} ({produced.html_bytes / 1024:.0f} KiB)\n")
    for line in produced.problems:
        sys.stderr.write(f"error: {line}\n")
    return 2 if produced.problems else 0
