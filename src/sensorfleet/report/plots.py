"""Charts for the HTML report, drawn with matplotlib (Agg) and returned as inline SVG.

matplotlib is the optional ``report`` extra; importing this module without
it raises ``ImportError``, which the CLI turns into one line with the fix.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: files only

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from ..node.layout import CLASSIC
from .equipment import MachineSeries
from .model import ABOVE, BELOW, RateRow, SensorSeries, ShareRow

TYPE_COLORS: dict[str, str] = {
    "spike": "#e4572e",
    "trend": "#f0a202",
    "pattern": "#7e57c2",
    "missing_data": "#90a4ae",
    "noise": "#26a69a",
}
OTHER_COLOR = "#bdbdbd"
OK_COLOR = "#3b82f6"
FLAG_COLOR = "#dc2626"
INK = "#1f2937"
MUTED = "#6b7280"
UNITS = {column.name: column.unit or "" for column in CLASSIC.channels}

_STYLE: dict[Any, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib, so always found
    "font.size": 10,
    "axes.edgecolor": "#d1d5db",
    "axes.labelcolor": INK,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#eef0f3",
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "svg.fonttype": "path",  # glyphs as outlines: looks the same with or without the font
    "svg.hashsalt": "sensorfleet",  # stable element ids, so the same data gives the same file
}


def type_color(kind: str) -> str:
    return TYPE_COLORS.get(kind, OTHER_COLOR)


def to_svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element that scales to its container."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", facecolor="white", dpi=160)
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # Replace the fixed size by a maximum width (the viewBox keeps the aspect
    # ratio), so a chart shrinks on a narrow screen but never grows past its design.
    found = re.search(r'<svg([^>]*?) width="([\d.]+)pt" height="[^"]*"', text)
    if found:
        pixels = float(found.group(2)) * 4 / 3
        text = (
            text[: found.start()]
            + f'<svg{found.group(1)} class="chart" role="img" style="max-width:{pixels:.0f}px"'
            + text[found.end() :]
        )
    return text


def rate_chart(rows: Sequence[RateRow], title: str | None = None) -> str:
    """Observed anomaly rate per group with its interval, the expected rate marked."""
    with plt.rc_context(_STYLE):
        names = [r.group for r in rows]
        figure, axes = plt.subplots(figsize=(max(4.8, 1.3 * len(rows) + 2.2), 3.6))
        x = np.arange(len(rows))
        observed = np.array([r.observed for r in rows])
        colors = [FLAG_COLOR if r.status in (ABOVE, BELOW) else OK_COLOR for r in rows]
        axes.bar(x, observed, width=0.56, color=colors, alpha=0.9, zorder=2, label="observed")
        low = observed - np.array([r.low for r in rows])
        high = np.array([r.high for r in rows]) - observed
        axes.errorbar(
            x, observed, yerr=[low, high], fmt="none", ecolor=INK, elinewidth=1.2,
            capsize=5, zorder=3, label="interval",
        )  # fmt: skip
        expected = [(i, r.expected) for i, r in enumerate(rows) if r.expected is not None]
        if expected:
            axes.scatter(
                [i for i, _ in expected], [e for _, e in expected], marker="D", s=46,
                color="white", edgecolor=INK, linewidth=1.6, zorder=4, label="expected",
            )  # fmt: skip
        for i, r in enumerate(rows):
            axes.annotate(
                f"{100 * r.observed:.2f}%", (i, r.high), xytext=(0, 6),
                textcoords="offset points", ha="center", fontsize=9, color=INK,
            )  # fmt: skip
        axes.set_xticks(x, [_wrap(n) for n in names])
        axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        top = max([r.high for r in rows] + [e for _, e in expected] + [0.01])
        axes.set_ylim(0, top * 1.18)
        if title:
            axes.set_title(title)
        axes.grid(axis="x", visible=False)
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
        return to_svg(figure)


def type_mix_chart(rows: Sequence[ShareRow], title: str | None = None) -> str:
    """For each group, the observed mix of anomaly types above the expected mix."""
    with plt.rc_context(_STYLE):
        groups = list(dict.fromkeys(r.group for r in rows))
        kinds = list(dict.fromkeys(r.anomaly_type for r in rows))
        figure, axes = plt.subplots(figsize=(8.6, 0.95 * len(groups) + 1.4))
        labels: list[str] = []
        for g, group in enumerate(groups):
            members = {r.anomaly_type: r for r in rows if r.group == group}
            for offset, which in ((0.0, "observed"), (0.42, "expected")):
                y = g * 1.2 + offset
                left = 0.0
                for kind in kinds:
                    row = members.get(kind)
                    if row is None:
                        continue
                    value = row.observed if which == "observed" else (row.expected or 0.0)
                    flagged = which == "observed" and row.status in (ABOVE, BELOW)
                    axes.barh(
                        y, value, left=left, height=0.36, color=type_color(kind),
                        alpha=1.0 if which == "observed" else 0.55,
                        edgecolor=FLAG_COLOR if flagged else "white",
                        linewidth=2.2 if flagged else 0.8, zorder=3 if flagged else 2,
                    )  # fmt: skip
                    if value >= 0.07:
                        axes.text(
                            left + value / 2, y, f"{100 * value:.0f}%", ha="center",
                            va="center", fontsize=8, color="white", fontweight="bold",
                        )  # fmt: skip
                    left += value
            labels.append(group)
        axes.set_yticks(
            [g * 1.2 + o for g in range(len(groups)) for o in (0.0, 0.42)],
            [f"{_wrap(name, 22)} · {w}" for name in labels for w in ("observed", "expected")],
        )
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.grid(axis="y", visible=False)
        if title:
            axes.set_title(title)
        handles = [Patch(color=type_color(k), label=k.replace("_", " ")) for k in kinds]
        handles.append(Patch(facecolor="white", edgecolor=FLAG_COLOR, linewidth=2, label="off"))
        axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                    ncol=len(handles), fontsize=9)  # fmt: skip
        return to_svg(figure)


def _robust_limits(low: np.ndarray, high: np.ndarray) -> tuple[float, float] | None:
    """Y limits that show the normal signal, not a spike at three times the value.

    The 5th percentile of bucket minima and the 95th of bucket maxima cover
    the everyday noise band (anomalies are a few percent of the time), with
    room above and below; anything further out is marked on the edge.
    """
    finite_low, finite_high = low[np.isfinite(low)], high[np.isfinite(high)]
    if not len(finite_low) or not len(finite_high):
        return None
    bottom = float(np.percentile(finite_low, 5))
    top = float(np.percentile(finite_high, 95))
    pad = max(top - bottom, abs(top) * 0.01, 1e-6) * 0.35
    return bottom - pad, top + pad


def _excursions(mask: np.ndarray, gap: int = 8) -> np.ndarray:
    """First index of each excursion off the scale; excursions closer than ``gap`` merge.

    One marker per event (a spike, an oscillating pattern) rather than a red bar.
    """
    hits = np.flatnonzero(mask)
    if not len(hits):
        return hits
    keep = np.concatenate(([True], np.diff(hits) > gap))
    return hits[keep]


def series_chart(series: SensorSeries) -> str:
    """Temperature, vibration and voltage of one sensor, anomaly episodes shaded by type.

    Values beyond the axis (spikes) are drawn as arrowheads on its edge, so one
    spike does not flatten the rest of the day into a line.
    """
    with plt.rc_context(_STYLE):
        figure, panels = plt.subplots(3, 1, figsize=(10, 5.6), sharex=True)
        times = np.array([datetime.fromtimestamp(t, UTC) for t in series.times])
        span = float(series.times[-1] - series.times[0]) if len(series.times) > 1 else 1.0
        seen: dict[str, str] = {}
        for panel, name in zip(panels, ("temperature", "vibration", "voltage"), strict=True):
            for episode in series.episodes:
                color = type_color(episode.anomaly_type)
                # A one-reading spike would be invisible; give every episode a visible width.
                end = max(episode.end, episode.start + span / 400)
                panel.axvspan(
                    datetime.fromtimestamp(episode.start, UTC), datetime.fromtimestamp(end, UTC),
                    color=color, alpha=0.25, linewidth=0, zorder=1,
                )  # fmt: skip
                seen[episode.anomaly_type] = color
            if len(times):
                low, high = series.low[name], series.high[name]
                panel.fill_between(
                    times, low, high, color="#93c5fd", alpha=0.55,
                    linewidth=0, zorder=2, step="mid", rasterized=True,
                )  # fmt: skip
                # Thousands of points: embedded as an image inside the SVG (axes stay vector).
                panel.plot(
                    times, series.mean[name], color="#1d4ed8", linewidth=0.9, zorder=3,
                    rasterized=True,
                )  # fmt: skip
                limits = _robust_limits(low, high)
                if limits is not None:
                    bottom, top = limits
                    panel.set_ylim(bottom, top)
                    over, under = _excursions(high > top), _excursions(low < bottom)
                    panel.scatter(times[over], np.full(len(over), top), marker="^", s=22,
                                  color=FLAG_COLOR, zorder=4, clip_on=False)  # fmt: skip
                    panel.scatter(times[under], np.full(len(under), bottom), marker="v",
                                  s=22, color=FLAG_COLOR, zorder=4, clip_on=False)  # fmt: skip
            panel.set_ylabel(f"{name}\n{UNITS[name]}", fontsize=9)
            panel.grid(axis="x", visible=False)
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        panels[-1].xaxis.set_major_locator(locator)
        panels[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
        panels[-1].set_xlabel("UTC", fontsize=9, color=MUTED)
        order = list(TYPE_COLORS)
        kinds = sorted(seen, key=lambda k: (order.index(k) if k in order else len(order), k))
        handles: list[Artist] = [
            Patch(color=seen[k], alpha=0.4, label=k.replace("_", " ")) for k in kinds
        ]
        handles.append(
            Line2D([], [], marker="^", linestyle="none", color=FLAG_COLOR, label="off the scale")
        )
        panels[-1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.42),
                          ncol=len(handles), fontsize=9)  # fmt: skip
        figure.align_ylabels(panels)
        return to_svg(figure)


def machine_chart(series: MachineSeries) -> str:
    """Every channel of one machine over time (bucket means), its faults shaded."""
    names = list(series.means)
    with plt.rc_context(_STYLE):
        figure, panels = plt.subplots(
            len(names), 1, figsize=(10, 0.9 * len(names) + 0.8), sharex=True, squeeze=False
        )
        times = np.array([datetime.fromtimestamp(t, UTC) for t in series.times])
        for (panel,), name in zip(panels, names, strict=True):
            for start, end, _fault in series.faults:
                panel.axvspan(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC),
                              color=FLAG_COLOR, alpha=0.15, linewidth=0, zorder=1)  # fmt: skip
            values = np.array([np.nan if v is None else v for v in series.means[name]])
            if len(times):
                panel.plot(times, values, color="#1d4ed8", linewidth=0.9, zorder=3,
                           rasterized=True)  # fmt: skip
            unit = series.units.get(name) or ""
            panel.set_ylabel(f"{name}\n{unit}", fontsize=8, rotation=0, ha="right", va="center")
            panel.grid(axis="x", visible=False)
        last = panels[-1][0]
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        last.xaxis.set_major_locator(locator)
        last.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
        last.set_xlabel("UTC (shaded: a machine fault in progress)", fontsize=9, color=MUTED)
        return to_svg(figure)


def _wrap(text: str, width: int = 14) -> str:
    """Break long group names (locations) over lines at spaces."""
    if len(text) <= width:
        return text
    words, lines, current = text.split(" "), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    lines.append(current)
    return "\n".join(lines)


def pr_chart(curves: Sequence[tuple[str, Sequence[tuple[float, float]]]]) -> str:
    """Precision against recall for each named detector (``sensorfleet score --html``)."""
    colors = [OK_COLOR, "#f0a202", "#7e57c2", "#26a69a", FLAG_COLOR]
    with plt.rc_context(_STYLE):
        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        for index, (name, points) in enumerate(curves):
            if not points:
                continue
            recall = [r for r, _ in points]
            precision = [p for _, p in points]
            color = colors[index % len(colors)]
            axes.step(recall, precision, where="post", color=color, linewidth=1.8, label=name)
        axes.set_xlim(0, 1.0)
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("recall (point-wise)")
        axes.set_ylabel("precision (point-wise)")
        axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.set_title("Precision-recall curve")
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
        return to_svg(figure)
