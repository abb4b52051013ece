"""A report for scripts: JSON (nested) or CSV (one tidy table).

Proportions are fractions with full precision; counts are exact integers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from .model import Report

CSV_COLUMNS: tuple[str, ...] = (
    "section",
    "dimension",
    "group",
    "anomaly_type",
    "total",
    "count",
    "observed",
    "low",
    "high",
    "expected",
    "status",
)


def report_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    return {
        "summary": {
            "rows": report.rows,
            "anomalies": report.anomalies,
            "sensors": report.sensors,
            "first": report.first,
            "last": report.last,
            "expected_from": report.expected_from,
            "readings_per_second": report.readings_per_second,
            "confidence": report.confidence,
            "interval_confidence": report.interval_confidence,
            "comparisons": report.comparisons(),
            "flagged": len(report.flagged()),
        },
        "sources": [asdict(s) for s in report.sources],
        "anomaly_rate": {d: [asdict(r) for r in rows] for d, rows in report.rates.items()},
        "anomaly_types": {d: [asdict(s) for s in rows] for d, rows in report.shares.items()},
        "sync": {
            "firmware_version": [
                {**asdict(r), "unsynced": r.unsynced, "share": r.share}
                for r in report.sync_by_firmware
            ],
            "source": [
                {**asdict(r), "unsynced": r.unsynced, "share": r.share}
                for r in report.sync_by_source
            ],
        },
        "equipment": None
        if report.equipment is None
        else {
            "fault_onsets": [asdict(r) for r in report.equipment.faults],
            "states": [asdict(r) for r in report.equipment.states],
            "shifts": [asdict(r) for r in report.equipment.shifts],
            "machines": [asdict(r) for r in report.equipment.machines],
        },
        "flags": report.flagged(),
        "notes": report.notes,
        "problems": report.problems,
    }


def render_json(report: Report) -> str:
    """The report as an indented JSON document."""
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: Report) -> str:
    """Every figure as one row of a tidy table (``CSV_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for dimension, rates in report.rates.items():
        for r in rates:
            writer.writerow(
                ("anomaly_rate", dimension, r.group, "", r.rows, r.anomalies,
                 r.observed, r.low, r.high, _blank(r.expected), r.status)
            )  # fmt: skip
    for dimension, shares in report.shares.items():
        flagged: dict[str, int] = {}
        for s in shares:
            flagged[s.group] = flagged.get(s.group, 0) + s.count
        for s in shares:
            writer.writerow(
                ("anomaly_type", dimension, s.group, s.anomaly_type, flagged[s.group], s.count,
                 s.observed, s.low, s.high, _blank(s.expected), s.status)
            )  # fmt: skip
    for dimension, rows in (("firmware_version", report.sync_by_firmware),
                            ("source", report.sync_by_source)):  # fmt: skip
        for y in rows:
            writer.writerow(
                ("sync", dimension, y.group, "", y.total, y.synced, y.share, "", "", "", "")
            )
    return out.getvalue()


def _blank(value: float | None) -> float | str:
    return "" if value is None else value
