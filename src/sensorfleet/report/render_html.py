"""A self-contained HTML report: inline CSS and inline SVG charts, nothing fetched.

The file opens offline, can be mailed or attached to a ticket, and prints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from . import plots
from .model import ABOVE, BELOW, OK, RateRow, Report, SensorSeries
from .render_text import Section, headline, percent, sections

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --ok:#15803d; --bad:#dc2626;
        --card:#f9fafb; --accent:#1d4ed8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #f3f4f6; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 60px; }
header h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
header p { margin: 2px 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr));
         gap: 12px; margin: 20px 0; }
.card { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 22px; font-weight: 700; margin-top: 2px; }
.verdict { border-radius: 10px; padding: 14px 18px; margin: 8px 0 22px; font-weight: 600; }
.verdict.ok { background: #ecfdf5; border: 1px solid #a7f3d0; color: var(--ok); }
.verdict.bad { background: #fef2f2; border: 1px solid #fecaca; color: var(--bad); }
.verdict ul { margin: 8px 0 0; padding-left: 20px; font-weight: 400; color: var(--ink); }
section { background: white; border: 1px solid var(--line); border-radius: 12px;
          padding: 18px 20px; margin: 18px 0; }
section h2 { font-size: 18px; margin: 0 0 10px; }
.chart { width: 100%; height: auto; display: block; margin: 0 auto; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
@media (max-width: 900px) { .pair { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; margin-top: 10px; font-size: 13px; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line);
     padding: 6px 8px; white-space: nowrap; }
td { padding: 5px 8px; border-bottom: 1px solid var(--line); }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
         font-weight: 600; }
.badge.ok { background: #dcfce7; color: var(--ok); }
.badge.bad { background: #fee2e2; color: var(--bad); }
.series { margin: 14px 0 26px; }
figcaption { margin-bottom: 4px; font-size: 15px; }
footer, .note { color: var(--muted); font-size: 12px; }
details summary { cursor: pointer; color: var(--accent); margin-top: 8px; }
.scroll { overflow-x: auto; }
"""


def table_html(section: Section) -> str:
    """One titled table as an HTML <table>, a status badge in the check column."""
    head = "".join(
        f'<th class="{"r" if right else ""}">{escape(h)}</th>'
        for h, right in zip(section.headers, section.right, strict=True)
    )
    body = []
    for index, row in enumerate(section.rows):
        status = section.status[index] if index < len(section.status) else None
        cells = []
        for column, (cell, right) in enumerate(zip(row, section.right, strict=True)):
            text = escape(cell)
            if status is not None and column == len(row) - 1:
                kind = "ok" if status == OK else "bad" if status in (ABOVE, BELOW) else ""
                text = f'<span class="badge {kind}">{text}</span>' if kind else text
            cells.append(f'<td class="{"r" if right else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# A chart stays readable up to a few dozen groups; tables always list every group.
MAX_CHART_GROUPS = 30
MAX_MIX_GROUPS = 15


def _largest(rows: list[RateRow], limit: int = MAX_CHART_GROUPS) -> list[RateRow]:
    """The ``limit`` groups with most rows, in their table order."""
    if len(rows) <= limit:
        return rows
    keep = {r.group for r in sorted(rows, key=lambda r: r.rows, reverse=True)[:limit]}
    return [r for r in rows if r.group in keep]


def _shown_note(shown: int, total: int) -> str:
    if shown >= total:
        return ""
    return f'<p class="note">Chart: the {shown} largest of {total} groups; the table lists all.</p>'


def card(label: str, value: str) -> str:
    """A small figure with its label, as in the report's header row."""
    return (
        f'<div class="card"><div class="k">{escape(label)}</div>'
        f'<div class="v">{escape(value)}</div></div>'
    )


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    tables = {s.title: s for s in sections(report)}
    flagged = report.flagged()
    comparisons = report.comparisons()
    overall = report.anomalies / report.rows if report.rows else 0.0
    parts = [
        *page_head("sensorfleet report", "Sensor fleet report", headline(report)),
        '<div class="cards">',
        card("sources", f"{len(report.sources):,}"),
        card("sensors", f"{report.sensors:,}"),
        card("readings", f"{report.rows:,}"),
        card("anomalous", percent(overall)),
        card("checks off", f"{len(flagged)} / {comparisons}"),
        "</div>",
    ]
    if report.rows == 0:
        parts.append(
            '<div class="verdict bad">No readings in the sources: nothing to compare.</div>'
        )
    elif flagged:
        items = "".join(f"<li>{escape(line)}</li>" for line in flagged)
        parts.append(
            f'<div class="verdict bad">{len(flagged)} of {comparisons} observed values disagree '
            f"with {escape(report.expected_from)}<ul>{items}</ul></div>"
        )
    else:
        parts.append(
            f'<div class="verdict ok">All {comparisons} observed values agree with '
            f"{escape(report.expected_from)}.</div>"
        )
    firmware = report.rates["firmware_version"]
    parts.append("<section><h2>Anomaly rate by firmware</h2>")
    if firmware:
        shown = _largest(firmware)
        parts.append(plots.rate_chart(shown) + _shown_note(len(shown), len(firmware)))
    parts.append(table_html(tables["Anomaly rate by firmware"]) + "</section>")
    model_shares = report.shares["model"]
    title = "Anomaly types by model (share of its anomalous rows)"
    parts.append("<section><h2>Anomaly types by model</h2>")
    if model_shares:
        models = {r.group for r in _largest(report.rates["model"], MAX_MIX_GROUPS)}
        shown_shares = [r for r in model_shares if r.group in models]
        total = len({r.group for r in model_shares})
        shown_models = len({r.group for r in shown_shares})
        parts.append(plots.type_mix_chart(shown_shares) + _shown_note(shown_models, total))
    parts.append(table_html(tables[title]) + "</section>")
    parts.append('<section><h2>Anomaly rate by manufacturer and by location</h2><div class="pair">')
    for dimension in ("manufacturer", "location"):
        rows = report.rates[dimension]
        shown = _largest(rows)
        chart = plots.rate_chart(shown, f"by {dimension}") if rows else ""
        chart += _shown_note(len(shown), len(rows))
        parts.append(f"<div>{chart}</div>")
    parts.append("</div>")
    for dimension in ("manufacturer", "location"):
        parts.append(table_html(tables[f"Anomaly rate by {dimension}"]))
    parts.append("</section>")
    if report.series:
        parts.append(f"<section><h2>{escape(_series_heading(report.series_window))}</h2>")
        parts.append(
            '<p class="note">Line: mean per time bucket; band: minimum to maximum in the '
            "bucket; shading: anomaly episodes by type."
            + (
                " <code>--window all</code> plots each sensor's whole history."
                if report.series_window
                else ""
            )
            + "</p>"
        )
        for series in report.series:
            parts.append(
                f'<figure class="series"><figcaption><b>{escape(series.sensor_id)}</b> '
                f'<span class="note">{escape(series.identity)} · {series.rows:,} readings '
                f"{escape(_series_span(series))}"
                f"· {len(series.episodes)} anomaly episodes · from {escape(series.source)}"
                f"</span></figcaption>{plots.series_chart(series)}</figure>"
            )
        parts.append("</section>")
    equipment = report.equipment
    if equipment is not None and (equipment.faults or equipment.states):
        parts.append("<section><h2>Machines</h2>")
        for title, section in tables.items():
            if title.startswith(
                ("Machine fault onsets", "Operating states", "Energy per machine", "Busy share")
            ):
                parts.append(f"<h3>{escape(title)}</h3>" + table_html(section))
        for machine in equipment.series:
            parts.append(
                f'<figure class="series"><figcaption><b>{escape(machine.model)}</b> '
                f'<span class="note">{escape(machine.sensor_id)} · every channel, bucket means '
                f"· from {escape(machine.source)}</span></figcaption>"
                f"{plots.machine_chart(machine)}</figure>"
            )
        parts.append("</section>")
    parts.append('<section><h2>Sync status</h2><div class="pair">')
    parts.append("<div>" + table_html(tables["Sync status by firmware"]) + "</div>")
    parts.append("<div>" + table_html(tables["Sync status by source"]) + "</div>")
    parts.append("</div></section>")
    parts.append(_footer(report))
    return page_end(parts)


def page_head(title: str, heading: str, lines: list[str]) -> list[str]:
    """The document's start: styles, then the heading and the lines under it."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>{escape(heading)}</h1>",
        *(f"<p>{escape(line)}</p>" for line in lines),
        "</header>",
    ]


def page_end(parts: list[str]) -> str:
    """The document: ``parts`` (which start with ``page_head``) closed and joined."""
    return "\n".join([*parts, "</main></body></html>"]) + "\n"


def _footer(report: Report) -> str:
    notes = "".join(f"<p>note: {escape(note)}</p>" for note in report.notes)
    return (
        "<footer>"
        f"{notes}<p>Intervals are Wilson score intervals on an effective sample size that "
        "counts anomaly episodes rather than rows (readings inside one episode are not "
        f"independent). They hold at {report.confidence:.0%} for the whole report at once "
        f"({100 * report.interval_confidence:.2f}% each, Bonferroni). A check is off when the "
        "expected value lies outside the interval.</p>"
        "<p>Generated by sensorfleet report.</p></footer>"
    )


def _series_heading(window: str | None) -> str:
    """Say what the charts cover: a 6-hour window of a week reads as the week otherwise."""
    if window is None:
        return "Sensors over time: each sensor's whole history"
    return f"Sensors over time: the last {window} before each sensor's last reading"


def _series_span(series: SensorSeries) -> str:
    """'from … to … UTC ' for a series with readings, else nothing."""
    if not len(series.times):
        return ""
    first, last = (
        datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M")
        for t in (series.times[0], series.times[-1])
    )
    return f"from {first} to {last} UTC "
