"""``sensorfleet report``: summarise node databases and check them against the config."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from ..errors import InputError
from ..node.clock import parse_duration
from ..node.config import load_config
from ..report.aggregate import drop_duplicate_origins, read_sources
from ..report.analysis import build_report
from ..report.expected import Expectations
from ..report.model import Report
from ..report.render_data import render_csv, render_json
from ..report.render_text import render_markdown, render_text
from ..report.series import choose_sensors, missing_sensors, read_series
from ..report.sources import database_errors, find_sources
from ..report.table import ReportSource

DEFAULT_CONFIG = "config.yaml"
DEFAULT_WINDOW = "6h"
INSTALL_HINT = "pip install 'sensorfleet[report]'"


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
        choices=["text", "json", "csv", "markdown"],
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

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()
        self._last = 0.0
        self._width = 0

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


def _html_renderer(path: str | None) -> ModuleType | None:
    """The HTML renderer, or one clear error if matplotlib is missing or the folder is."""
    if path is None:
        return None
    try:
        from ..report import render_html
    except ImportError:
        raise InputError(
            [f"--html: the HTML report needs matplotlib, which is not installed; {INSTALL_HINT}"]
        ) from None
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise InputError([f"--html {path}: folder {parent} does not exist"])
    _check_writable(Path(path))
    return render_html


def _check_writable(target: Path) -> None:
    """Fail now, not after minutes of reading, when the HTML file cannot be written."""
    if target.is_dir():
        raise InputError([f"--html {target}: cannot write (Is a directory)"])
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_bytes(b"")
        temporary.unlink()
    except OSError as exc:
        raise InputError([f"--html {target}: cannot write ({exc.strerror or exc})"]) from None


def _config_path(flag: str | None) -> str | None:
    if flag:
        return flag
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def _window(text: str) -> float | None:
    return None if text.strip().lower() == "all" else parse_duration(text, "--window")


def build(args: argparse.Namespace, progress: Progress | None) -> tuple[Report, list[str]]:
    """Read every source and build the report; return it with the problem lines."""
    config_path = _config_path(args.config)
    config = load_config(config_path)
    sources, problems = find_sources(args.sources)
    if args.html and args.sensor:
        # Before the long read: a misspelt --sensor is reported in seconds.
        unknown = missing_sensors(sources, args.sensor)
        if unknown:
            raise InputError(
                [f"--sensor {name}: no readings of this sensor in the sources" for name in unknown]
            )
    callback = progress.update if progress is not None else None
    if progress is not None:
        progress.total = len(sources)
    summaries, unreadable = read_sources(sources, callback)
    if progress is not None:
        progress.finish()
    problems.extend(unreadable)
    if not summaries:
        raise InputError(problems or ["no sources given"])
    notes = drop_duplicate_origins(summaries)
    expectations = Expectations(config, args.readings_per_second)
    label = config_path or "the built-in defaults"
    report = build_report(summaries, expectations, expected_from=label, confidence=args.confidence)
    report.notes[:0] = notes
    report.problems = problems
    if args.html:
        picks, missing = choose_sensors(summaries, args.sensor)
        problems.extend(missing)
        window = _window(args.window)
        for pick in picks:
            source = pick.summary.source
            try:
                report.series.append(read_series(pick, window))
            except database_errors(source) as exc:
                problems.append(f"{source.label}: cannot plot {pick.sensor_id} ({exc})")
    return report, problems


def _validate(args: argparse.Namespace) -> None:
    problems = []
    if not 0 < args.confidence < 1:
        problems.append(
            f"--confidence: expected a level between 0 and 1, e.g. 0.95 (got {args.confidence})"
        )
    if args.readings_per_second is not None and args.readings_per_second <= 0:
        problems.append(
            f"--readings-per-second: expected a positive rate (got {args.readings_per_second})"
        )
    if args.sensor and not args.html:
        problems.append("--sensor: only meaningful with --html (it picks the plotted sensors)")
    if problems:
        raise InputError(problems)
    _window(args.window)  # raises InputError on a bad duration


def handle(args: argparse.Namespace) -> int:
    _validate(args)
    renderer = _html_renderer(args.html)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(sys.stderr, len(args.sources)) if show else None
    report, problems = build(args, progress)
    if args.format == "json":
        text = render_json(report)
    elif args.format == "csv":
        text = render_csv(report)
    elif args.format == "markdown":
        text = render_markdown(report)
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        text = render_text(report, color=color)
    sys.stdout.write(text)
    sys.stdout.flush()
    if renderer is not None and args.html:
        target = Path(args.html)
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            temporary.write_text(renderer.render_html(report), encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            problems.append(f"--html {target}: cannot write ({exc.strerror or exc})")
        else:
            size = target.stat().st_size
            sys.stderr.write(f"report: wrote {target} ({size / 1024:.0f} KiB)\n")
    for line in problems:
        sys.stderr.write(f"error: {line}\n")
    return 2 if problems else 0
