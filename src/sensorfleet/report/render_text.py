"""A report as text: aligned tables for a terminal, or Markdown tables.

Percentages are shown with two decimals, the same rounding as the SQL
queries in the documentation, so the two can be compared by eye.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .equipment import FAULT_DIMENSIONS, EquipmentReport
from .model import ABOVE, BELOW, DIMENSION_TITLES, OK, RateRow, Report, ShareRow, SyncRow

_MARKS = {OK: "ok", ABOVE: "▲ above", BELOW: "▼ below"}
_GREEN, _RED, _DIM, _BOLD, _RESET = "\033[32m", "\033[31;1m", "\033[2m", "\033[1m", "\033[0m"


@dataclass(frozen=True)
class Section:
    """One titled table, every cell already text."""

    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    right: tuple[bool, ...]  # right-align this column
    status: tuple[str, ...] = ()  # per row, for colouring the check column


def percent(value: float | None) -> str:
    """``0.07123`` → ``7.12%``; None → ``–``."""
    return "–" if value is None else f"{100 * value:.2f}%"


def interval(low: float, high: float) -> str:
    """``6.21–7.93%``."""
    return f"{100 * low:.2f}–{100 * high:.2f}%"


def _rate_section(dimension: str, rows: list[RateRow]) -> Section:
    title = DIMENSION_TITLES[dimension]
    return Section(
        title=f"Anomaly rate by {title}",
        headers=(
            title,
            "sensors",
            "rows",
            "anomalies",
            "observed",
            "interval",
            "expected",
            "check",
        ),
        rows=[
            (
                r.group,
                f"{r.sensors:,}",
                f"{r.rows:,}",
                f"{r.anomalies:,}",
                percent(r.observed),
                interval(r.low, r.high),
                percent(r.expected),
                _MARKS.get(r.status, r.status),
            )
            for r in rows
        ],
        right=(False, True, True, True, True, True, True, False),
        status=tuple(r.status for r in rows),
    )


def _share_section(dimension: str, rows: list[ShareRow]) -> Section:
    title = DIMENSION_TITLES[dimension]
    shown: list[tuple[str, ...]] = []
    previous = None
    for r in rows:
        # The group name once per block of types reads like the original query's output.
        shown.append(
            (
                r.group if r.group != previous else "",
                r.anomaly_type,
                f"{r.count:,}",
                percent(r.observed),
                interval(r.low, r.high),
                percent(r.expected),
                _MARKS.get(r.status, r.status),
            )
        )
        previous = r.group
    return Section(
        title=f"Anomaly types by {title} (share of its anomalous rows)",
        headers=(title, "type", "rows", "observed", "interval", "expected", "check"),
        rows=shown,
        right=(False, False, True, True, True, True, False),
        status=tuple(r.status for r in rows),
    )


def _sync_section(title: str, heading: str, rows: list[SyncRow]) -> Section:
    return Section(
        title=title,
        headers=(heading, "total", "synced", "unsynced", "synced %"),
        rows=[
            (r.group, f"{r.total:,}", f"{r.synced:,}", f"{r.unsynced:,}", percent(r.share))
            for r in rows
        ],
        right=(False, True, True, True, True),
    )


def sections(report: Report) -> list[Section]:
    """The report's tables in reading order."""
    found = [_rate_section("firmware_version", report.rates["firmware_version"])]
    found.append(_share_section("model", report.shares["model"]))
    for dimension in ("manufacturer", "location", "model"):
        found.append(_rate_section(dimension, report.rates[dimension]))
    found.append(_sync_section("Sync status by firmware", "firmware", report.sync_by_firmware))
    found.append(_sync_section("Sync status by source", "source", report.sync_by_source))
    if report.equipment is not None:
        found.extend(_equipment_sections(report.equipment))
    return found


# Machines listed in the text and HTML energy table (JSON has them all).
MACHINES_SHOWN = 12


def _equipment_sections(equipment: EquipmentReport) -> list[Section]:
    """Fault onsets per model, firmware and manufacturer; states and energy per model."""
    found = []
    for dimension, heading in FAULT_DIMENSIONS:
        rows = [r for r in equipment.faults if r.dimension == dimension]
        if not rows:
            continue
        found.append(
            Section(
                title=f"Machine fault onsets by {heading}",
                headers=(heading, "sensors", "hours at risk", "onsets", "interval", "expected",
                         "check"),
                rows=[
                    (r.group, f"{r.sensors:,}", f"{r.hours_at_risk:,.1f}", f"{r.onsets:,}",
                     f"{r.low:.1f}–{r.high:.1f}", f"{r.expected:.1f}",
                     _MARKS.get(r.status, r.status))
                    for r in rows
                ],
                right=(False, True, True, True, True, True, False),
                status=tuple(r.status for r in rows),
            )
        )  # fmt: skip
    if equipment.states:
        found.append(
            Section(
                title="Operating states by model",
                headers=("model", "state", "rows", "share", "without fault", "expected",
                         "energy kWh", "check"),
                rows=[
                    (r.model, r.state, f"{r.rows:,}", percent(r.share),
                     percent(r.healthy_share),
                     "–" if r.expected is None or r.tolerance is None
                     else f"{percent(r.expected)} ± {percent(r.tolerance)}",
                     "–" if r.energy_kwh is None else f"{r.energy_kwh:,.1f}",
                     _MARKS.get(r.status, r.status) if r.expected is not None else "–")
                    for r in equipment.states
                ],
                right=(False, False, True, True, True, True, True, False),
                status=tuple(r.status if r.expected is not None else "" for r in equipment.states),
            )
        )  # fmt: skip
    if equipment.machines:
        shown = equipment.machines[:MACHINES_SHOWN]
        more = len(equipment.machines) - len(shown)
        found.append(
            Section(
                title="Energy per machine, against its model's median"
                + (f" (the {len(shown)} most above it; {more} more in --format json)"
                   if more else ""),
                headers=("model", "machine", "location", "days", "kWh per day",
                         "× model median"),
                rows=[
                    (r.model, r.sensor_id, r.location, f"{r.days:,.1f}",
                     f"{r.kwh_per_day:,.1f}",
                     "–" if r.vs_model_median is None else f"{r.vs_model_median:.2f}")
                    for r in shown
                ],
                right=(False, False, False, True, True, True),
            )
        )  # fmt: skip
    if equipment.shifts:
        found.append(
            Section(
                title="Busy share by production factor (scheduled machines)",
                headers=("model", "factor", "UTC offset", "hours", "busy", "expected", "check"),
                rows=[
                    (r.model, f"{r.factor:g}", f"{r.utc_offset_hours:+g} h", f"{r.hours:,.1f}",
                     percent(r.busy_share),
                     f"{percent(r.expected)} ± {percent(r.tolerance)}",
                     _MARKS.get(r.status, r.status))
                    for r in equipment.shifts
                ],
                right=(False, True, True, True, True, True, False),
                status=tuple(r.status for r in equipment.shifts),
            )
        )  # fmt: skip
    return found


def headline(report: Report) -> list[str]:
    """The lines above the tables: what was read and what it was compared with."""
    span = f"{_short(report.first)} → {_short(report.last)}" if report.first else "no readings"
    sources = len(report.sources)
    rate = report.readings_per_second
    return [
        f"{sources} source{'s' if sources != 1 else ''} · {report.rows:,} rows · "
        f"{report.sensors:,} sensor{'s' if report.sensors != 1 else ''} · {span}",
        f"expected values from {report.expected_from} at {rate:g} reading"
        f"{'' if rate == 1 else 's'} per second; intervals hold at {report.confidence:.0%} "
        f"for the whole report ({report.comparisons()} comparisons, "
        f"{100 * report.interval_confidence:.2f}% each)",
    ]


def verdict(report: Report) -> list[str]:
    """The closing lines: do observations agree with the config?"""
    flagged = report.flagged()
    total = report.comparisons()
    machines = report.equipment is not None and bool(report.equipment.faults)
    if report.rows == 0 and not machines:
        return ["No readings in the sources: nothing to compare."]
    if not flagged:
        return [f"All {total} observed values agree with {report.expected_from}."]
    lines = [f"{len(flagged)} of {total} observed values disagree with {report.expected_from}:"]
    lines.extend(f"  - {line}" for line in flagged)
    return lines


def _short(stamp: str) -> str:
    # 2026-11-23T20:56:28.789730Z → 2026-11-23 20:56 UTC
    return stamp[:16].replace("T", " ") + " UTC" if len(stamp) >= 16 else stamp


def plain_table(section: Section, color: bool) -> list[str]:
    """One titled table as aligned text lines (numbers right-aligned)."""
    widths = [len(h) for h in section.headers]
    for row in section.rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            cell.rjust(w) if right else cell.ljust(w)
            for cell, w, right in zip(cells, widths, section.right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    title = f"{_BOLD}{section.title}{_RESET}" if color else section.title
    header = line(section.headers)
    lines = [title, f"{_DIM}{header}{_RESET}" if color else header]
    for index, row in enumerate(section.rows):
        text = line(row)
        if color and index < len(section.status):
            status = section.status[index]
            mark = row[-1]
            paint = _GREEN if status == OK else _RED if status in (ABOVE, BELOW) else ""
            if paint and text.endswith(mark):
                text = text[: -len(mark)] + f"{paint}{mark}{_RESET}"
        lines.append(text)
    return lines


def render_text(report: Report, color: bool = False) -> str:
    """The terminal report."""
    lines = headline(report)
    lines[0] = f"sensorfleet report · {lines[0]}"
    for section in sections(report):
        lines.append("")
        lines.extend(plain_table(section, color))
    lines.append("")
    closing = verdict(report)
    if color:
        paint = _GREEN if not report.flagged() else _RED
        closing[0] = f"{paint}{closing[0]}{_RESET}"
    lines.extend(closing)
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines) + "\n"


# Characters that Markdown would read as formatting inside a line of text or a cell.
_MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]<>|~#!])")
_MARKDOWN_LINE_START = re.compile(r"^(\s*)([-+>=]|\d+[.)])")


def escape_markdown(text: str) -> str:
    """``text`` shown literally in Markdown: ids, locations and paths come from the data."""
    flat = " ".join(text.splitlines())
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", flat)
    return _MARKDOWN_LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)


def _cell(text: str) -> str:
    return escape_markdown(text)


def render_markdown(report: Report) -> str:
    """The report as Markdown (GitHub tables)."""
    lines = ["# sensorfleet report", ""]
    lines.extend(f"{escape_markdown(line)}  " for line in headline(report))
    for section in sections(report):
        lines += ["", f"## {escape_markdown(section.title)}", ""]
        lines.append("| " + " | ".join(_cell(h) for h in section.headers) + " |")
        lines.append("|" + "|".join("---:" if r else "---" for r in section.right) + "|")
        lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows)
    lines += ["", "## Verdict", ""]
    lines.extend(escape_markdown(line) for line in verdict(report))
    if report.notes:
        lines += [""] + [f"- note: {escape_markdown(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"
