"""A block's channel values, filled segment by segment in closed form.

Within a segment an analog channel follows its state's target with a
first-order response, x(t) = L + (x0 − L)·e^(−(t − t0)/τ); only the values at
segment starts are carried from one segment to the next (a short loop over
segments, never over readings). Daily, weekly and seasonal terms and noise are
added on top, then the active machine fault's effects, each a closed-form
function of the time since onset. Derived channels and counters evaluate their
formulas over the whole block; counters sum their rate exactly in reading
order, so a block split anywhere gives the same bits. Instrument faults
change only what is reported, never what other channels read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from .calendar import DAYS_PER_YEAR, Times, harmonic
from .catalogue import EquipmentModel
from .degradation import lagged_progress
from .schema import ChannelSpecRaw, Effect
from .segments import Columns, Segments, StartValues

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Labels:
    """Per-reading ground truth the channels need (and the block reports)."""

    segment: IntArray  # index into the timeline's segments
    state: IntArray
    fault: IntArray  # machine fault index, -1 none
    onset: FloatArray  # the machine fault's onset (seconds from the origin)
    tau: FloatArray  # seconds since the machine fault's onset, frozen at a trip (progress)
    since: FloatArray  # seconds since the machine fault's onset (what channels follow)
    course: FloatArray
    severity: FloatArray
    fault_severity: FloatArray
    health: FloatArray
    instrument: IntArray  # instrument fault index (own numbering), -1 none
    instrument_onset: FloatArray
    instrument_severity: FloatArray
    phase: FloatArray
    demand: FloatArray


def _full(value: FloatArray | float, n: int) -> FloatArray:
    """``value`` as a float array of ``n`` readings (a formula may give a constant)."""
    if isinstance(value, np.ndarray) and value.shape == (n,):
        return value.astype(np.float64, copy=False)
    return np.full(n, value, dtype=np.float64)


def _clip(value: FloatArray, bounds: tuple[float, float]) -> FloatArray:
    clipped: FloatArray = np.minimum(np.maximum(value, bounds[0]), bounds[1])
    return clipped


def _per_state(value: float | Mapping[str, float] | None, states: tuple[str, ...]) -> FloatArray:
    if value is None:
        return np.zeros(len(states))
    if not isinstance(value, Mapping):
        return np.full(len(states), float(value))
    default = value.get("default", 0.0)
    return np.array([float(value.get(state, default)) for state in states])


# Segments whose start values are composed at once. Over segment k a channel moves as
# x ↦ d·x + (1 − d)·L (decay d = e^(−span/τ), level L); segments are grouped in fixed
# windows of WINDOW by their number since the timeline began, and within a window the
# composed map from the window's first value, x = scale·x_window + offset, is built one
# position at a time for all windows and channels together (array work, not a Python
# step per segment). The windows are then chained, one Python step per window. Every
# product and sum is taken in the same order however readings fall into blocks (a
# block carries the window it stopped in), so the values never depend on the blocks.
# The number is part of the arithmetic: changing it changes the last bits of values.
WINDOW = 32


def _grid(values: npt.NDArray[Any], first: int, rows: int, pad: float) -> npt.NDArray[Any]:
    """``values`` laid out by window position: element i at [(first + i) % WINDOW,
    (first + i) // WINDOW]; other places hold ``pad``."""
    grid = np.full(rows * WINDOW, pad, dtype=values.dtype)
    grid[first : first + len(values)] = values
    return grid.reshape(rows, WINDOW).T.copy()


def _compose(
    decays: FloatArray, gains: FloatArray, carried: StartValues
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Scales and offsets of the steps laid out by ``_grid`` (shape (WINDOW, windows,
    channels), decay 1 and gain 0 where there is no step), carrying on from ``carried``
    at its place in the first window; and every touched window's first values.

    Returns ``scale`` and ``offset`` of shape (WINDOW + 1, windows, channels) and
    ``window_start`` of shape (windows + 1, channels): the value at grid position g
    (position ``first`` being the carried segment) is ``scale[c, r]·window_start[r] +
    offset[c, r]`` for r = max(g − 1, 0) // WINDOW and c = g − r·WINDOW.
    """
    _, rows, channels = decays.shape
    scale = np.empty((WINDOW + 1, rows, channels))
    offset = np.empty((WINDOW + 1, rows, channels))
    scale[0], offset[0] = 1.0, 0.0
    # Positions before the carried one hold its own scale and offset (×1, +0: exact).
    scale[0, 0], offset[0, 0] = carried.scale, carried.offset
    for column in range(WINDOW):
        np.multiply(decays[column], scale[column], out=scale[column + 1])
        np.multiply(decays[column], offset[column], out=offset[column + 1])
        offset[column + 1] += gains[column]
    window_start = np.empty((rows + 1, channels))
    window_start[0] = carried.window_start
    ends_scale, ends_offset = scale[WINDOW], offset[WINDOW]
    for channel in range(channels):
        offsets = ends_offset[:, channel]
        if not ends_scale[:, channel].any():  # every window forgets its start (fast decays)
            window_start[1:, channel] = offsets
            continue
        value = float(carried.window_start[channel])
        chain = [value]
        add = chain.append
        for s, o in zip(ends_scale[:, channel].tolist(), offsets.tolist(), strict=True):
            value = s * value + o
            add(value)
        window_start[:, channel] = chain
    return scale, offset, window_start


@dataclass(frozen=True)
class SavedChannels:
    """What a ``Channels`` carries between blocks, to go back to."""

    counters: dict[str, tuple[int, float]]
    stuck: dict[tuple[str, str, str, float], float]
    noise: dict[str, Mapping[str, Any]]
    bursts: dict[tuple[str, str], Mapping[str, Any]]


@dataclass
class Channels:
    """Channel computation for one simulator, with what carries from block to block."""

    model: EquipmentModel
    noise: dict[str, np.random.Generator]
    bursts: dict[tuple[str, str], np.random.Generator]
    counters: dict[str, tuple[int, float]] = field(default_factory=dict)  # shift id, sum
    stuck: dict[tuple[str, str, str, float], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec, states = self.model.spec, self.model.states
        self.raw = spec.channels
        self.decimals = {channel.name: channel.decimals for channel in self.model.channels}
        # Noise by state (channels without any noise draw nothing).
        spreads = {name: _per_state(raw.noise, states) for name, raw in self.raw.items()}
        self.spreads = {name: spread for name, spread in spreads.items() if spread.any()}
        self.analog = [n for n, c in self.raw.items() if c.kind in ("analog", "digital")]
        self.targets = np.array([_per_state(self.raw[n].target, states) for n in self.analog]).T
        self.taus = np.array([_per_state(self.raw[n].tau_seconds, states) for n in self.analog]).T
        with np.errstate(divide="ignore"):
            self.rates = np.where(self.taus > 0, 1.0 / self.taus, np.inf)  # 1/τ per state
        # Channels with τ = 0 in every state sit on their target: their start values
        # never show, so only the others are carried from segment to segment.
        self.remembering = np.flatnonzero(np.isfinite(self.rates).any(axis=0))
        self.effects: dict[str, list[tuple[int, str, Effect]]] = {}
        for index, (name, fault) in enumerate(spec.faults.items()):
            for channel, effect in fault.effects.items():
                self.effects.setdefault(channel, []).append((index, name, effect))

    def save(self) -> SavedChannels:
        """What carries from block to block, copied."""
        return SavedChannels(
            dict(self.counters),
            dict(self.stuck),
            {name: rng.bit_generator.state for name, rng in self.noise.items()},
            {key: rng.bit_generator.state for key, rng in self.bursts.items()},
        )

    def load(self, saved: SavedChannels) -> None:
        """Go back to ``saved`` (which stays usable)."""
        self.counters, self.stuck = dict(saved.counters), dict(saved.stuck)
        for name, state in saved.noise.items():
            self.noise[name].bit_generator.state = state
        for key, state in saved.bursts.items():
            self.bursts[key].bit_generator.state = state

    # ---- the first-order response of analog and digital channels ---------------------
    def _segment_starts(self, segments: Segments, columns: Columns, which: IntArray) -> FloatArray:
        """Values at the start of segment ``which[i]``, for each i, of the channels that
        remember (carried forward in closed form).

        Only the carried values are known (those the previous block left at the segment
        of its last reading), and readings never fall before that segment. This block's
        last segment keeps its own for the next.
        """
        analog, keep = len(self.analog), self.remembering
        if segments.carried is None:
            target = self.targets[int(columns.state[0])].copy()
            segments.carried = (0, StartValues(target, np.ones(analog), np.zeros(analog)))
        at, carried = segments.carried
        last = int(which[-1])
        if last <= at:
            return np.broadcast_to(carried.values[keep], (len(which), len(keep)))
        first = segments.ordinal(at) % WINDOW
        rows = (first + last - at - 1) // WINDOW + 1
        spans = _grid((columns.end - columns.start)[at:last], first, rows, 0.0)[..., None]
        states = _grid(columns.state[at:last], first, rows, 0)
        # e^(−span/τ) for every segment at once: 0 for τ = 0 (rate = inf: the channel
        # jumps to its target), 1 for a segment of no length (it hands its values on,
        # as the grid's padding does).
        with np.errstate(invalid="ignore"):
            decays = np.where(spans > 0, np.exp(-spans * self.rates[:, keep][states]), 1.0)
        gains = (1.0 - decays) * self.targets[:, keep][states]
        kept = StartValues(carried.window_start[keep], carried.scale[keep], carried.offset[keep])
        scale, offset, window_start = _compose(decays, gains, kept)
        grid = which - at + first
        row = np.maximum(grid - 1, 0) // WINDOW
        column = grid - row * WINDOW
        starts: FloatArray = scale[column, row] * window_start[row] + offset[column, row]
        # What the next block carries on from: the last segment's place in its window.
        # A channel without memory stands at its last target (kept for a reload that
        # gives it a time constant).
        end = first + last - at
        carry = StartValues(
            self.targets[int(columns.state[last - 1])].copy(), np.ones(analog), np.zeros(analog)
        )
        if end % WINDOW == 0:  # a window starts there
            carry.window_start[keep] = starts[-1]
        else:
            row_end, column_end = divmod(end, WINDOW)
            carry.window_start[keep] = window_start[row_end]
            carry.scale[keep] = scale[column_end, row_end]
            carry.offset[keep] = offset[column_end, row_end]
        segments.carried = (last, carry)
        return starts

    def _responses(
        self, t: FloatArray, segments: Segments, columns: Columns, labels: Labels
    ) -> dict[str, FloatArray]:
        if not self.analog:
            return {}
        which, keep = labels.segment, self.remembering
        values = self.targets[labels.state]  # a channel without memory: its target
        if len(keep):
            starts = self._segment_starts(segments, columns, which)
            level, rate = values[:, keep], self.rates[:, keep][labels.state]
            elapsed = (t - columns.start[which])[:, None]
            with np.errstate(invalid="ignore"):
                decay = np.exp(-elapsed * rate)
            decay[np.isnan(decay)] = 0.0  # τ = 0 at a segment's first instant: already there
            values[:, keep] = level + (starts - level) * decay
        return {name: values[:, i] for i, name in enumerate(self.analog)}

    # ---- the whole block ---------------------------------------------------------------
    def fill(
        self,
        t: FloatArray,
        times: Times,
        segments: Segments,
        columns: Columns,
        labels: Labels,
        interval: float,
    ) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
        """True values (what other channels read) and reported values, per channel."""
        model, n = self.model, len(t)
        responses = self._responses(t, segments, columns, labels)
        env: dict[str, FloatArray | float] = self._variables(times, labels, interval)
        values: dict[str, FloatArray] = {}
        dropped: dict[str, list[IntArray]] = {}  # readings a machine fault loses
        for name in model.order:
            raw = self.raw[name]
            if raw.kind == "counter":
                increments = self._evaluate(name, env, n) * interval
                # A rate a formula cannot give (0/0, log 0) adds nothing rather than
                # turning the count into NaN for good.
                increments[~np.isfinite(increments)] = 0.0
                value = self._count(name, raw, increments, times.shift_id, labels.state)
            else:
                if raw.kind == "derived":
                    value = self._evaluate(name, env, n)
                    value[np.isinf(value)] = np.nan  # no reading rather than infinity
                else:
                    value = responses[name]
                if raw.kind == "analog":
                    value = value + self._seasons(raw, times)
                spread = self.spreads.get(name)
                if spread is not None:
                    value = value + spread[labels.state] * self.noise[name].standard_normal(n)
                value = self._apply_effects(name, value, labels, dropped)
                if raw.kind == "digital":
                    value = (value >= 0.5).astype(np.float64)
            if raw.range is not None:
                value = _clip(value, raw.range)
            values[name] = value
            env[name] = value
        return values, self._report(values, t, labels, dropped)

    def _evaluate(self, name: str, env: dict[str, FloatArray | float], n: int) -> FloatArray:
        with np.errstate(all="ignore"):  # the caller decides what a non-finite value means
            value = _full(self.model.formulas[name].evaluate(env), n)
        return value.copy() if value.base is not None else value

    def _variables(
        self, times: Times, labels: Labels, interval: float
    ) -> dict[str, FloatArray | float]:
        model = self.model
        env: dict[str, FloatArray | float] = {
            "production": times.production,
            "planned": (times.production > 0).astype(np.float64),
            "outdoor_temp_c": times.outdoor_temp_c,
            "hour": times.hour,
            "weekday": times.weekday.astype(np.float64),
            "interval": interval,
            "health": labels.health,
            "phase": labels.phase,
            "demand": labels.demand,
        }
        demand = model.spec.operation.demand
        capacity = demand.capacity_m3_min if demand is not None else math.nan
        env["capacity"] = capacity
        env["duty"] = np.clip(labels.demand / capacity, 0.0, 1.0) if demand else math.nan
        for code, state in enumerate(model.states):
            env[f"is_{state}"] = (labels.state == code).astype(np.float64)
        for index, fault in enumerate(model.machine_faults):
            env[f"severity_{fault}"] = np.where(labels.fault == index, labels.fault_severity, 0.0)
        return env

    @staticmethod
    def _seasons(raw: ChannelSpecRaw, times: Times) -> FloatArray | float:
        return (
            harmonic(raw.daily, times.hour, 24.0)
            + harmonic(raw.weekly, times.day_of_week, 7.0)
            + harmonic(raw.seasonal, times.day_of_year, DAYS_PER_YEAR)
        )

    def _count(
        self,
        name: str,
        raw: ChannelSpecRaw,
        increments: FloatArray,
        shift_id: IntArray,
        state: IntArray,
    ) -> FloatArray:
        """Running sums in reading order, restarting at each shift when ``reset: shift``
        and at every reading in maintenance when ``reset: maintenance``."""
        if raw.reset == "shift":
            runs = shift_id
        elif raw.reset == "maintenance":
            # Each reading in maintenance opens a new run, numbered on from the last block's:
            # the same runs however the readings are split into blocks.
            serviced = state == self.model.states.index("maintenance")
            base = self.counters[name][0] if name in self.counters else 0
            runs = base + np.cumsum(serviced, dtype=np.int64)
        else:
            runs = np.zeros(len(increments), dtype=np.int64)
        run, carry = self.counters.get(name, (int(runs[0]), 0.0))
        bounds = [0, *(np.flatnonzero(np.diff(runs)) + 1).tolist(), len(increments)]
        out = np.empty(len(increments))
        for lo, hi in pairwise(bounds):
            start = carry if int(runs[lo]) == run else 0.0
            # Summed from the carried value in order: the same bits however blocks fall.
            out[lo:hi] = np.cumsum(np.concatenate(([start], increments[lo:hi])))[1:]
            run, carry = int(runs[hi - 1]), float(out[hi - 1])
        self.counters[name] = (run, carry)
        if raw.integer:
            return np.floor(out + 1e-9)
        return out

    def _apply_effects(
        self, name: str, value: FloatArray, labels: Labels, dropped: dict[str, list[IntArray]]
    ) -> FloatArray:
        for index, fault_name, effect in self.effects.get(name, ()):
            hit = np.flatnonzero(labels.fault == index)
            if not len(hit):
                continue
            spec = self.model.spec.faults[fault_name]
            if effect.bursts is not None:
                draws = self.bursts[(fault_name, name)].random(len(hit))
                hit = hit[draws < effect.bursts]
            if effect.mode == "dropout":  # the reading is lost, the machine runs on
                dropped.setdefault(name, []).append(hit)
                continue
            value = value.copy()
            if effect.mode == "stuck":
                self._hold(("fault", fault_name, name), value, hit, labels.onset[hit])
                continue
            weight = labels.severity[hit] * lagged_progress(
                spec.progression,
                labels.since[hit],
                labels.course[hit],
                spec.growth,
                effect.lag_seconds,
            )
            if effect.mode == "add":
                value[hit] += effect.to * weight
            elif effect.mode == "scale":
                value[hit] *= 1.0 + (effect.to - 1.0) * weight
            elif effect.mode == "set":
                value[hit] += (effect.to - value[hit]) * np.minimum(weight, 1.0)
            else:  # flip: a digital signal chatters
                value[hit] = 1.0 - (value[hit] >= 0.5)
        return value

    def _hold(
        self, key: tuple[str, str, str], value: FloatArray, rows: IntArray, onsets: FloatArray
    ) -> None:
        """A stuck value: each episode repeats the value of its first affected reading."""
        for onset in np.unique(onsets).tolist():
            episode = rows[onsets == onset]
            held = self.stuck.setdefault((*key, onset), float(value[episode[0]]))
            value[episode] = held

    def _report(
        self,
        values: dict[str, FloatArray],
        t: FloatArray,
        labels: Labels,
        dropped: dict[str, list[IntArray]],
    ) -> dict[str, FloatArray]:
        """What the instruments show: true values, changed by an instrument fault, rounded."""
        reported = dict(values)
        for name, lost in dropped.items():
            reported[name] = reported[name].copy()
            for rows in lost:
                reported[name][rows] = np.nan
        hit_any = np.flatnonzero(labels.instrument >= 0)
        specs = list(self.model.spec.instrument_faults.values())
        touched: set[str] = set()
        for index in np.unique(labels.instrument[hit_any]).tolist():
            spec = specs[index]
            hit = np.flatnonzero(labels.instrument == index)
            value = reported[spec.channel].copy()
            severity, onset = labels.instrument_severity[hit], labels.instrument_onset[hit]
            if spec.mode == "drift":
                value[hit] += spec.amount * severity * (t[hit] - onset) / 3600.0
            elif spec.mode == "offset":
                value[hit] += spec.amount * severity
            elif spec.mode == "dropout":
                value[hit] = np.nan
            else:  # stuck: the value the episode's first reading showed
                self._hold(("instrument", spec.channel, str(index)), value, hit, onset)
            reported[spec.channel] = value
            touched.add(spec.channel)
        for name, value in reported.items():
            bounds = self.raw[name].range
            if bounds is not None and name in touched:  # the instrument's own range
                value = _clip(value, bounds)
            with np.errstate(over="ignore"):  # near float's limit rounding overflows
                shown = value.round(self.decimals[name])
            shown[np.isinf(shown)] = np.nan  # beyond any instrument: no reading
            reported[name] = shown
        return reported
