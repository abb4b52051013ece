"""Scores as a text table, as JSON for pipelines, or as an HTML page.

The text and HTML tables are the report's own (``report.render_text.Section``
rendered by ``plain_table`` and ``table_html``), and the HTML page is built
from the report's page, styles and charts, so both commands look alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from ..report.render_text import Section, plain_table
from .evaluate import Evaluation, GroupScore

FORMATS: tuple[str, ...] = ("text", "json")
BREAKDOWN_TITLES = {
    "anomaly_type": "anomaly type",
    "fault": "fault",
    "model": "model",
    "firmware": "firmware",
}
UNMATCHED_NOTES = {
    "unknown_sensor": "predictions for a sensor the truth does not have",
    "no_reading": "predictions with no reading of their sensor within the tolerance",
    "duplicate": "further predictions for a reading already matched (first kept)",
    "nan_score": "matched predictions whose score is NaN (ranked lowest)",
    "readings_without_prediction": "readings in the scored span without a prediction "
    "(counted as not flagged)",
    "readings_outside_span": "readings before a sensor's first or after its last "
    "prediction (not scored)",
    "sensors_without_predictions": "truth sensors without any matched prediction",
}
_METRIC_HEADERS = (
    "point P",
    "point R",
    "point F1",
    "range P",
    "range R",
    "range F1",
    "ROC-AUC",
    "PR-AUC",
    "delay p50",
    "delay p95",
    "missed",
    "false alarms/day",
)


def number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def _metric_cells(g: GroupScore) -> tuple[str, ...]:
    per_day = g.false_alarms_per_sensor_day
    return (
        number(g.point.precision),
        number(g.point.recall),
        number(g.point.f1),
        number(g.range.precision),
        number(g.range.recall),
        number(g.range.f1),
        number(g.roc_auc),
        number(g.pr_auc),
        seconds(g.delay.median_seconds),
        seconds(g.delay.p95_seconds),
        f"{g.delay.missed:,}/{g.delay.detected + g.delay.missed:,}",
        number(per_day, 2),
    )


def comparison_section(evaluations: list[Evaluation]) -> Section:
    """One row per detector (the predictions first, then each baseline), overall."""
    return Section(
        title="Overall",
        headers=("detector", *_METRIC_HEADERS),
        rows=[(e.detector, *_metric_cells(e.overall)) for e in evaluations],
        right=(False,) + (True,) * len(_METRIC_HEADERS),
    )


def breakdown_sections(evaluation: Evaluation) -> list[Section]:
    """The primary detector's figures per anomaly type (or fault), model and firmware."""
    found = []
    for dimension, groups in evaluation.breakdowns.items():
        title = BREAKDOWN_TITLES.get(dimension, dimension)
        found.append(
            Section(
                title=f"By {title}",
                headers=(title, "readings", "episodes", *_METRIC_HEADERS),
                rows=[
                    (name, f"{g.readings:,}", f"{g.episodes:,}", *_metric_cells(g))
                    for name, g in groups.items()
                ],
                right=(False, True, True) + (True,) * len(_METRIC_HEADERS),
            )
        )
    return found


def unmatched_section(evaluation: Evaluation) -> Section:
    counts = evaluation.overall.unmatched
    return Section(
        title="Not matched (nothing is dropped silently)",
        headers=("count", "what", "meaning"),
        rows=[(f"{counts[k] or 0:,}", k, note) for k, note in UNMATCHED_NOTES.items()],
        right=(True, False, False),
    )


def confusion_section(evaluation: Evaluation) -> Section | None:
    confusion = evaluation.overall.confusion
    if confusion is None:
        return None
    return Section(
        title="Confusion of types (rows: truth, columns: predicted fault), readings",
        headers=("truth", *confusion.predicted_labels),
        rows=[
            (name, *(f"{c:,}" for c in row))
            for name, row in zip(confusion.true_labels, confusion.counts, strict=True)
        ],
        right=(False,) + (True,) * len(confusion.predicted_labels),
    )


def rul_section(evaluations: list[Evaluation]) -> Section | None:
    rows: list[tuple[str, ...]] = [
        (
            e.detector,
            f"{e.overall.rul.count:,}",
            seconds(e.overall.rul.mae_seconds),
            seconds(e.overall.rul.rmse_seconds),
            f"{e.overall.rul.phm08:.4g}",
            f"{e.overall.rul.phm08_mean:.4g}",
        )
        for e in evaluations
        if e.overall.rul is not None
    ]
    if not rows:
        return None
    unit = seconds(evaluations[0].options.rul_unit_seconds)
    return Section(
        title=f"Remaining useful life (PHM08 in units of {unit})",
        headers=("detector", "readings", "MAE", "RMSE", "PHM08 sum", "PHM08 mean"),
        rows=rows,
        right=(False, True, True, True, True, True),
    )


def headline(evaluation: Evaluation) -> list[str]:
    """What was scored against what, and how flags were decided."""
    o = evaluation.overall
    options = evaluation.options
    r = options.ranges
    if evaluation.flags_from == "--threshold":
        flags = f"flags where score >= {_g(evaluation.threshold)} (--threshold)"
    elif evaluation.flags_from == "best point F1":
        flags = (
            f"flags where score >= {_g(evaluation.threshold)}, the threshold with the best "
            "point-wise F1 (optimistic: chosen on this truth)"
        )
    else:
        flags = "flags from the flag column"
    return [
        f"truth {evaluation.truth} · {o.readings:,} readings scored · "
        f"{o.anomalous_readings:,} anomalous in {o.episodes:,} episodes",
        f"detector {evaluation.detector}: {flags}",
        f"range metrics: alpha {r.alpha:g}, cardinality {r.cardinality}, recall bias "
        f"{r.recall_bias}, precision bias {r.precision_bias}; timestamps matched within "
        f"{options.tolerance_seconds:g} s",
    ]


def _g(value: float | None) -> str:
    return "–" if value is None else f"{value:.6g}"


def render_text(evaluations: list[Evaluation]) -> str:
    """The terminal output: headline, the comparison, the breakdowns, what did not match."""
    primary = evaluations[0]
    lines = headline(primary)
    lines[0] = f"sensorfleet score · {lines[0]}"
    sections = [comparison_section(evaluations), *breakdown_sections(primary)]
    sections += [s for s in (confusion_section(primary), rul_section(evaluations)) if s]
    sections.append(unmatched_section(primary))
    for section in sections:
        lines.append("")
        lines.extend(plain_table(section, color=False))
    best = primary.overall.best_f1
    if best is not None:
        lines += [
            "",
            f"best point-wise F1 from the scores: {best.f1:.3f} at threshold "
            f"{best.threshold:.6g} (precision {best.precision:.3f}, recall {best.recall:.3f})",
        ]
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> Any:
    """JSON has no infinity: a threshold of inf (nothing flagged) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def group_dict(g: GroupScore) -> dict[str, Any]:
    """One group's figures as JSON-ready data (in a breakdown, the unmatched counts that
    belong to no group are null)."""
    return {
        "readings": g.readings,
        "anomalous_readings": g.anomalous_readings,
        "episodes": g.episodes,
        "point": {**asdict(g.point), **g.point_counts},
        "range": {**asdict(g.range), "predicted_ranges": g.predicted_ranges},
        "roc_auc": g.roc_auc,
        "pr_auc": g.pr_auc,
        "best_f1": None if g.best_f1 is None else asdict(g.best_f1),
        "detection_delay": asdict(g.delay),
        "false_alarms": {
            "count": g.false_alarms,
            "sensor_days": g.sensor_days,
            "per_sensor_day": g.false_alarms_per_sensor_day,
        },
        "unmatched": g.unmatched,
        "confusion": None if g.confusion is None else asdict(g.confusion),
        "rul": None if g.rul is None else asdict(g.rul),
    }


def evaluation_dict(e: Evaluation) -> dict[str, Any]:
    """One detector's scores: ``overall`` and the same under ``by_<dimension>``."""
    r = e.options.ranges
    data: dict[str, Any] = {
        "detector": e.detector,
        "truth": e.truth,
        "flags_from": e.flags_from,
        "threshold": e.threshold,
        "parameters": {
            "tolerance_seconds": e.options.tolerance_seconds,
            "range": asdict(r),
            "rul_unit_seconds": e.options.rul_unit_seconds,
        },
        "overall": group_dict(e.overall),
    }
    for dimension, groups in e.breakdowns.items():
        data[f"by_{dimension}"] = {name: group_dict(g) for name, g in groups.items()}
    return data


def render_json(evaluations: list[Evaluation]) -> str:
    """The primary detector's scores, its baselines under ``baselines``."""
    data = evaluation_dict(evaluations[0])
    data["baselines"] = {e.detector: evaluation_dict(e) for e in evaluations[1:]}
    return json.dumps(_finite(data), indent=2, ensure_ascii=False) + "\n"


def render_html(evaluations: list[Evaluation]) -> str:
    """A self-contained page in the report's style, with the precision-recall curves."""
    from html import escape

    from ..report import plots
    from ..report.render_html import card, page_end, page_head, table_html

    primary = evaluations[0]
    o = primary.overall
    parts = page_head("sensorfleet score", "Detector score", headline(primary))
    parts += [
        '<div class="cards">',
        card("readings scored", f"{o.readings:,}"),
        card("episodes", f"{o.episodes:,}"),
        card("point F1", number(o.point.f1)),
        card("range F1", number(o.range.f1)),
        card("ROC-AUC", number(o.roc_auc)),
        card("missed episodes", f"{o.delay.missed:,}"),
        "</div>",
        "<section><h2>Overall</h2>",
        f'<div class="scroll">{table_html(comparison_section(evaluations))}</div>',
        "</section>",
    ]
    curves = [(e.detector, e.overall.pr_curve) for e in evaluations if e.overall.pr_curve]
    if curves:
        parts += [
            "<section><h2>Precision and recall over every threshold</h2>",
            plots.pr_chart(curves),
            '<p class="note">Point-wise: each reading counts once. The area under each '
            "curve is its PR-AUC (average precision).</p></section>",
        ]
    extras = [s for s in (confusion_section(primary), rul_section(evaluations)) if s]
    for section in [*breakdown_sections(primary), *extras]:
        parts += [
            f"<section><h2>{escape(section.title)}</h2>",
            f'<div class="scroll">{table_html(section)}</div>',  # wide tables scroll alone
            "</section>",
        ]
    parts += [
        f"<section><h2>{escape(unmatched_section(primary).title)}</h2>",
        table_html(unmatched_section(primary)),
        "</section>",
        "<footer><p>Range metrics after Tatbul et al., NeurIPS 2018; delay is from an "
        "episode's first reading to its first flagged one; a false alarm is a flagged run "
        "touching no episode. See docs/score.md.</p><p>Generated by sensorfleet score.</p>"
        "</footer>",
    ]
    return page_end(parts)
