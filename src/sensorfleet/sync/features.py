"""Derived features added to stream records (``sensorfleet sync --features time,ratios,rolling``).

- ``time``: ``hour``, ``day_of_week`` (Monday 0), ``month``, ``is_weekend`` and
  ``is_night_shift`` (22:00 to 06:00) of the reading's timestamp, in UTC: rows carry no
  time zone of their sensor.
- ``ratios``: ``temp_pressure_ratio``, ``vibration_power_ratio`` and
  ``flow_pressure_product``, from the first channel whose name starts with
  ``temperature``, ``pressure``, ``vibration``, ``power`` or ``flow``; absent when the
  table has no such channels, ``null`` when a value is missing or a divisor is 0.
- ``rolling``: per sensor and channel, ``<channel>_avg_1min`` and ``<channel>_std_1min``,
  the mean and population standard deviation of that sensor's readings with a timestamp
  in the minute up to and including this one, among the readings this collector has
  read. The window is state of the collector: it carries over batch boundaries, starts
  empty when the collector starts, and starts again when a sensor's timestamps go back.

A batch the sink did not take is read again with the same features: a row's features are
kept until the sink acknowledges it, so a resend never counts a reading twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import InputError
from .sinks.base import Batch

SETS = ("time", "ratios", "rolling")
WINDOW_SECONDS = 60.0
# A window whose mean square is this many times its variance is summed again directly.
_CANCELLATION = 1e6
NIGHT_STARTS, NIGHT_ENDS = 22, 6  # the night shift, in hours of the day
# The ratios of the reference process data: name, numerator, operator, other channel.
RATIOS = (
    ("temp_pressure_ratio", "temperature", "/", "pressure"),
    ("vibration_power_ratio", "vibration", "/", "power"),
    ("flow_pressure_product", "flow", "*", "pressure"),
)


def parse_features(text: str) -> frozenset[str]:
    """The sets a ``--features`` value names (``all`` for every one)."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    if names == {"all"}:
        return frozenset(SETS)
    unknown = sorted(names - set(SETS))
    if unknown or not names:
        raise InputError(
            [f"--features: expected a comma-separated list of {', '.join(SETS)} or all "
             f"(got {text!r})"]
        )  # fmt: skip
    return frozenset(names)


def time_features(moment: datetime) -> dict[str, int]:
    """The calendar features of one UTC instant."""
    hour = moment.hour
    return {
        "hour": hour,
        "day_of_week": moment.weekday(),
        "month": moment.month,
        "is_weekend": int(moment.weekday() >= 5),
        "is_night_shift": int(hour >= NIGHT_STARTS or hour < NIGHT_ENDS),
    }


def ratio_channels(channels: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """The ratios a table can have: name → (channel, operator, channel)."""
    names = list(channels)

    def first(prefix: str) -> str | None:
        return next((name for name in names if name.startswith(prefix)), None)

    found = {}
    for name, left, operator, right in RATIOS:
        a, b = first(left), first(right)
        if a is not None and b is not None:
            found[name] = (a, operator, b)
    return found


def _ratio(a: Any, operator: str, b: Any) -> float | None:
    if a is None or b is None:
        return None
    if operator == "*":
        return float(a) * float(b)
    return float(a) / float(b) if b != 0 else None


@dataclass
class _Window:
    """A sensor's readings of one channel in the last minute it was seen (times sorted)."""

    times: np.ndarray = field(default_factory=lambda: np.empty(0))
    values: np.ndarray = field(default_factory=lambda: np.empty(0))


def rolling(
    window: _Window, times: np.ndarray, values: np.ndarray
) -> tuple[list[float | None], list[float | None], _Window]:
    """Mean and standard deviation over the minute up to each new reading, and the window
    left for the next batch. ``times`` must not go back (the caller splits there)."""
    all_times = np.concatenate([window.times, times])
    all_values = np.concatenate([window.values, values])
    present = ~np.isnan(all_values)
    # Shifted by one value of the window so that the sums of squares keep their digits.
    shift = float(all_values[present][0]) if present.any() else 0.0
    shifted = np.where(present, all_values - shift, 0.0)
    count = np.concatenate([[0], np.cumsum(present)])
    total = np.concatenate([[0.0], np.cumsum(shifted)])
    squares = np.concatenate([[0.0], np.cumsum(shifted * shifted)])
    ends = np.arange(len(window.times), len(all_times)) + 1
    starts = np.searchsorted(all_times, times - WINDOW_SECONDS, side="right")
    n = count[ends] - count[starts]
    with np.errstate(invalid="ignore", divide="ignore"):  # n = 0: no reading, null
        mean = (total[ends] - total[starts]) / n
        square = (squares[ends] - squares[starts]) / n
        variance = square - mean * mean
        deviation = np.sqrt(np.maximum(variance, 0.0))
    mean = mean + shift
    # Sums of squares far above the spread lose its digits (a constant or steadily
    # counting channel): those windows are summed again from their values.
    for k in np.flatnonzero((n > 0) & (variance * _CANCELLATION <= square)):
        values_in = all_values[starts[k] : ends[k]]
        values_in = values_in[~np.isnan(values_in)]
        mean[k] = values_in.mean()
        deviation[k] = np.sqrt(np.mean((values_in - mean[k]) ** 2))
    empty = n == 0
    means: list[float | None] = [
        None if e else m for e, m in zip(empty.tolist(), mean.tolist(), strict=True)
    ]
    deviations: list[float | None] = [
        None if e else d for e, d in zip(empty.tolist(), deviation.tolist(), strict=True)
    ]
    keep = all_times > all_times[-1] - WINDOW_SECONDS
    return means, deviations, _Window(all_times[keep], all_values[keep])


class Features:
    """Computes the chosen features of each batch's rows, keeping the rolling windows."""

    def __init__(self, sets: frozenset[str]) -> None:
        self.sets = sets
        self._windows: dict[tuple[str, str, str], _Window] = {}  # (table, sensor, channel)
        # Features of rows read but not acknowledged yet, per (database_id, table).
        self._pending: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}

    def annotate(self, batch: Batch) -> tuple[dict[str, Any], ...]:
        """The features of each row of ``batch``, in row order."""
        layout = batch.layout
        pending = self._pending.setdefault((batch.database_id, layout.table), {})
        fresh = [row for row in batch.rows if int(row[0]) not in pending]
        if fresh:
            for row_id, extra in zip(
                (int(row[0]) for row in fresh), self._compute(batch, fresh), strict=True
            ):
                pending[row_id] = extra
        return tuple(pending[int(row[0])] for row in batch.rows)

    def acknowledged(self, batch: Batch) -> None:
        """The sink holds these rows: their features are not needed again."""
        pending = self._pending.get((batch.database_id, batch.layout.table), {})
        for row_id in batch.ids:
            pending.pop(row_id, None)

    def _compute(self, batch: Batch, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        layout = batch.layout
        at = {name: 1 + k for k, name in enumerate(layout.names)}
        moments = [_instant(row[at["timestamp"]]) for row in rows]
        extras: list[dict[str, Any]] = [{} for _ in rows]
        channels = [column.name for column in layout.channels]
        if "time" in self.sets:
            for extra, moment in zip(extras, moments, strict=True):
                extra.update(time_features(moment))
        if "ratios" in self.sets:
            for name, (a, operator, b) in ratio_channels(channels).items():
                for extra, row in zip(extras, rows, strict=True):
                    extra[name] = _ratio(row[at[a]], operator, row[at[b]])
        if "rolling" in self.sets:
            self._rolling(layout.table, rows, at, channels, moments, extras)
        return extras

    def _rolling(
        self,
        table: str,
        rows: list[tuple[Any, ...]],
        at: dict[str, int],
        channels: list[str],
        moments: list[datetime],
        extras: list[dict[str, Any]],
    ) -> None:
        by_sensor: dict[str, list[int]] = {}
        for k, row in enumerate(rows):
            by_sensor.setdefault(str(row[at["sensor_id"]]), []).append(k)
        for sensor, indexes in by_sensor.items():
            times = np.array([moments[k].timestamp() for k in indexes])
            # A timestamp earlier than the one before it starts a new window there.
            breaks = [0, *(np.flatnonzero(np.diff(times) < 0) + 1).tolist(), len(times)]
            for channel in channels:
                key = (table, sensor, channel)
                column = at[channel]
                values = np.array(
                    [np.nan if rows[k][column] is None else float(rows[k][column])
                     for k in indexes]
                )  # fmt: skip
                window = self._windows.get(key, _Window())
                if len(window.times) and len(times) and times[0] < window.times[-1]:
                    window = _Window()
                for start, end in itertools.pairwise(breaks):
                    if start > 0:
                        window = _Window()
                    means, deviations, window = rolling(window, times[start:end], values[start:end])
                    for k, mean, deviation in zip(
                        indexes[start:end], means, deviations, strict=True
                    ):
                        extras[k][f"{channel}_avg_1min"] = mean
                        extras[k][f"{channel}_std_1min"] = deviation
                self._windows[key] = window


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
