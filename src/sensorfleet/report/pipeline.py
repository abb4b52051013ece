"""The report from start to finish: what ``sensorfleet report`` calls.

``produce_report`` takes the options (the command's flags), reads every
source, counts, compares with the config, reads the plotted series and
renders the report in the chosen format; it returns the report, that text
and the problem lines. ``write_html`` then writes the HTML report, so a
caller can show the text first: drawing the plots takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import InputError
from ..node.clock import parse_duration
from ..node.config import load_config
from .aggregate import drop_duplicate_origins, read_sources
from .analysis import build_report
from .equipment import read_equipment
from .expected import Expectations
from .model import Report
from .render_data import render_csv, render_json
from .render_text import render_markdown, render_text
from .series import choose_sensors, missing_sensors, read_series
from .sources import database_errors, find_sources
from .table import ReportSource

FORMATS: tuple[str, ...] = ("text", "json", "csv", "markdown")
DEFAULT_WINDOW = "6h"
INSTALL_HINT = "pip install 'sensorfleet[report]'"


@dataclass(frozen=True)
class ReportOptions:
    """What to report on, and how (the ``report`` command's flags)."""

    sources: Sequence[str]  # database files, folders of them, postgresql:// URLs
    config: str | None = None  # the config the nodes ran with; None: the built-in defaults
    format: str = "text"  # one of FORMATS
    color: bool = False  # colours in the text format
    html: str | None = None  # an HTML report to write with ``write_html``
    sensors: Sequence[str] = ()  # sensors plotted in the HTML report (default: a few)
    window: str = DEFAULT_WINDOW  # time plotted per sensor, ending at its last reading; "all"
    confidence: float = 0.95  # for the whole report's intervals at once
    readings_per_second: float | None = None  # the nodes' rate, if not the config's


class ReadProgress(Protocol):
    """Told how reading the sources goes (the command draws it on stderr)."""

    def start(self, total: int) -> None: ...

    def update(self, index: int, source: ReportSource, stage: str, fraction: float) -> None: ...

    def finish(self) -> None: ...


@dataclass
class ProducedReport:
    """What ``produce_report`` made, and ``write_html`` after it."""

    report: Report
    text: str  # the report in the chosen format
    html: Path | None = None  # the HTML file, once written
    html_bytes: int = 0

    @property
    def problems(self) -> list[str]:
        """One line per source, plot or file that could not be used; empty if none."""
        return self.report.problems


def produce_report(options: ReportOptions, progress: ReadProgress | None = None) -> ProducedReport:
    """Read every source and build, then render, the report.

    Raises ``InputError`` for bad options, or when no source could be read;
    problems with some sources only are in the result's ``problems``.
    """
    _validate(options)
    check_html(options.html)
    report = _build(options, progress)
    return ProducedReport(report, _render(report, options))


def write_html(produced: ProducedReport, path: str) -> None:
    """Write the HTML report to ``path`` through a temporary file; a failure is a problem line."""
    from . import render_html

    problem = write_page(path, render_html.render_html(produced.report))
    if problem:
        produced.problems.append(problem)
    else:
        produced.html = Path(path)
        produced.html_bytes = produced.html.stat().st_size


def write_page(path: str, text: str) -> str | None:
    """Write ``text`` to ``path`` through a temporary file; the problem line if it fails."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        return f"--html {target}: cannot write ({exc.strerror or exc})"
    return None


def check_html(path: str | None) -> None:
    """One clear error now if matplotlib is missing, or the HTML file cannot be written."""
    if path is None:
        return
    try:
        from . import render_html  # noqa: F401
    except ImportError:
        raise InputError(
            [f"--html: the HTML report needs matplotlib, which is not installed; {INSTALL_HINT}"]
        ) from None
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise InputError([f"--html {path}: folder {parent} does not exist"])
    _check_writable(Path(path))


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


def _window(text: str) -> float | None:
    return None if text.strip().lower() == "all" else parse_duration(text, "--window")


def _validate(options: ReportOptions) -> None:
    problems = []
    if options.format not in FORMATS:
        problems.append(f"--format: expected one of {', '.join(FORMATS)} (got {options.format!r})")
    if not 0 < options.confidence < 1:
        problems.append(
            f"--confidence: expected a level between 0 and 1, e.g. 0.95 (got {options.confidence})"
        )
    if options.readings_per_second is not None and options.readings_per_second <= 0:
        problems.append(
            f"--readings-per-second: expected a positive rate (got {options.readings_per_second})"
        )
    if options.sensors and not options.html:
        problems.append("--sensor: only meaningful with --html (it picks the plotted sensors)")
    if problems:
        raise InputError(problems)
    _window(options.window)  # raises InputError on a bad duration


def _build(options: ReportOptions, progress: ReadProgress | None) -> Report:
    """Read every source and build the report, its problem lines in ``report.problems``."""
    config = load_config(options.config)
    sources, problems = find_sources(options.sources)
    if options.html and options.sensors:
        # Before the long read: a misspelt --sensor is reported in seconds.
        unknown = missing_sensors(sources, options.sensors)
        if unknown:
            raise InputError(
                [f"--sensor {name}: no readings of this sensor in the sources" for name in unknown]
            )
    callback = progress.update if progress is not None else None
    if progress is not None:
        progress.start(len(sources))
    summaries, unreadable = read_sources(sources, callback)
    if progress is not None:
        progress.finish()
    problems.extend(unreadable)
    if not summaries:
        raise InputError(problems or ["no sources given"])
    notes = drop_duplicate_origins(summaries)
    expectations = Expectations(config, options.readings_per_second)
    label = options.config or "the built-in defaults"
    report = build_report(
        summaries, expectations, expected_from=label, confidence=options.confidence
    )
    report.notes[:0] = notes
    report.problems = problems
    report.equipment = read_equipment(
        sources, config, report.interval_confidence, plot=bool(options.html)
    )
    if report.equipment is not None:
        report.notes.extend(report.equipment.notes)
    if options.html:
        picks, missing = choose_sensors(summaries, list(options.sensors))
        problems.extend(missing)
        window = _window(options.window)
        report.series_window = None if window is None else options.window.strip()
        for pick in picks:
            source = pick.summary.source
            try:
                report.series.append(read_series(pick, window))
            except database_errors(source) as exc:
                problems.append(f"{source.label}: cannot plot {pick.sensor_id} ({exc})")
    return report


def _render(report: Report, options: ReportOptions) -> str:
    """The report as text in the chosen format."""
    if options.format == "json":
        return render_json(report)
    if options.format == "csv":
        return render_csv(report)
    if options.format == "markdown":
        return render_markdown(report)
    return render_text(report, color=options.color)
