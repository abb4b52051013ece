"""Anomaly episodes: when they start, what kind they are, what they do to readings.

The configured ``anomalies.probability`` is the long-run share of flagged
readings. Episodes of trend, pattern, missing data and noise last many
readings, so the per-reading start rate is calibrated from the type mix and
durations (a renewal process: idle gap, then an episode), see ``calibrate``.

Randomness is consumed in reading order from three streams: one uniform per
reading decides starts, four uniforms per start candidate fix an episode's
details, and noise episodes draw their extra variation per reading. Every
draw count depends only on the readings, never on how they are split into
blocks, so 10,000 readings at once or 37 at a time give exactly the same stream.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np
import numpy.typing as npt

from .config import Anomalies, NormalParameters
from .profiles import ANOMALY_TYPES, Behaviour
from .readings import KIND_CODES

TREND_MAX_SHIFT = 0.5  # a trend reaches up to ±50 % of the value by its end
TREND_MIN_SHIFT = 0.25
PATTERN_AMPLITUDE = 0.2  # 20 % of the normal (mean) value


@dataclass(frozen=True)
class Mix:
    """The calibrated episode process for one identity and config."""

    flag_rate: float  # target long-run share of flagged readings
    start_probability: float  # per idle reading
    type_probabilities: dict[str, float]  # share of episodes by type
    lengths: dict[str, int]  # readings per episode by type

    @property
    def cumulative(self) -> tuple[list[str], list[float]]:
        """Type names and their cumulative probabilities, for inverse-CDF sampling."""
        names = list(self.type_probabilities)
        return names, list(accumulate(self.type_probabilities[n] for n in names))

    @property
    def mean_length(self) -> float:
        return sum(p * self.lengths[t] for t, p in self.type_probabilities.items())

    def row_shares(self) -> dict[str, float]:
        """Expected share of flagged readings of each type."""
        mean = self.mean_length
        if mean <= 0:
            return {}
        return {t: p * self.lengths[t] / mean for t, p in self.type_probabilities.items()}


def calibrate(anomalies: Anomalies, behaviour: Behaviour, readings_per_second: float) -> Mix:
    """Solve for the episode start rate that yields the target flagged share.

    With start probability ``s`` per idle reading and mean episode length
    ``L``, a cycle is ``(1-s)/s`` idle readings then ``L`` flagged ones, so the
    flagged share is ``f = L / ((1-s)/s + L)``, i.e. ``s = f / (f + L (1-f))``.
    """
    types = anomalies.types
    weights: dict[str, float] = {}
    lengths: dict[str, int] = {}
    for name in ANOMALY_TYPES:
        settings = getattr(types, name)
        duration = getattr(settings, "duration_seconds", None)
        lengths[name] = 1 if duration is None else max(1, round(duration * readings_per_second))
        multiplier = behaviour.type_weight_multipliers.get(name, 1.0)
        weights[name] = settings.weight * multiplier if settings.enabled else 0.0
    total = sum(weights.values())
    rate = min(1.0, anomalies.probability * behaviour.probability_multiplier)
    if not anomalies.enabled or total <= 0 or rate <= 0:
        return Mix(0.0, 0.0, {}, lengths)
    probabilities = {t: w / total for t, w in weights.items() if w > 0}
    mean_length = sum(p * lengths[t] for t, p in probabilities.items())
    start = rate / (rate + mean_length * (1.0 - rate))
    return Mix(rate, start, probabilities, lengths)


@dataclass
class Episode:
    """One anomaly episode, fixed when it starts."""

    kind: str
    start_index: int
    length: int
    parameter: int  # 0 temperature, 1 vibration, 2 voltage (spike and trend)
    direction: float  # +1 up, -1 down
    magnitude: float  # spike factor, or trend's final fractional shift
    forced: bool = False

    @property
    def end_index(self) -> int:
        return self.start_index + self.length


@dataclass
class Segment:
    """The part of an episode that falls inside one block (local indexes)."""

    episode: Episode
    lo: int
    hi: int


@dataclass
class AnomalyProcess:
    """Stateful episode process for one sensor; survives across blocks and reloads."""

    events: np.random.Generator
    details: np.random.Generator
    noise: np.random.Generator
    mix: Mix
    behaviour: Behaviour
    active: Episode | None = None
    forced_next: tuple[str, int] | None = field(default=None)

    def force(self, kind: str, length: int) -> None:
        """Start an episode of ``kind`` at the next reading, replacing any current one."""
        self.forced_next = (kind, max(1, length))

    def clear(self) -> None:
        """End the current episode now."""
        self.active = None
        self.forced_next = None

    def reconfigure(self, mix: Mix, behaviour: Behaviour) -> None:
        """Apply new settings from the next reading; a running episode ends if disabled."""
        self.mix, self.behaviour = mix, behaviour
        self._refresh()
        if (
            self.active
            and not self.active.forced
            and self.active.kind not in mix.type_probabilities
        ):
            self.active = None

    def _new_episode(
        self,
        index: int,
        draws: tuple[float, float, float, float],
        kind: str | None = None,
        length: int = 0,
    ) -> Episode:
        type_u, param_u, direction_u, magnitude_u = draws
        forced = kind is not None
        if kind is None:
            names, cumulative = self._types
            kind = names[min(bisect_right(cumulative, type_u * cumulative[-1]), len(names) - 1)]
            length = self.mix.lengths[kind]
        behaviour = self.behaviour
        parameter = min(bisect_right(self._parameters, param_u), 2)
        if kind == "spike":
            low, high = behaviour.spike_factor
            factor = low + (high - low) * magnitude_u
            magnitude = 1.0 + (factor - 1.0) * behaviour.severity
        else:
            shift = TREND_MIN_SHIFT + (TREND_MAX_SHIFT - TREND_MIN_SHIFT) * magnitude_u
            magnitude = min(TREND_MAX_SHIFT, shift * behaviour.severity)
        direction = 1.0 if direction_u < 0.5 else -1.0
        return Episode(kind, index, length, parameter, direction, magnitude, forced)

    def __post_init__(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        self._types = self.mix.cumulative
        weights = list(accumulate(self.behaviour.parameter_weights))
        self._parameters = [w / weights[-1] for w in weights[:-1]]

    def segments(self, first_index: int, count: int) -> list[Segment]:
        """Lay out episodes over readings ``[first_index, first_index + count)``."""
        starts = self.events.random(count)  # one draw per reading, always
        found: list[Segment] = []
        position = 0
        if self.forced_next is not None:
            kind, length = self.forced_next
            self.forced_next = None
            draws = tuple(self.details.random(4).tolist())
            self.active = self._new_episode(first_index, draws, kind, length)
        if self.active is not None:
            cover = min(self.active.end_index - first_index, count)
            if cover > 0:
                found.append(Segment(self.active, 0, cover))
                position = cover
            if self.active.end_index <= first_index + count:
                self.active = None
        if self.mix.start_probability <= 0:
            return found
        candidates = np.flatnonzero(starts < self.mix.start_probability).tolist()
        # Four detail draws per candidate, used or not, keep the stream block-invariant.
        draws = self.details.random((len(candidates), 4)).tolist()
        for candidate, four in zip(candidates, draws, strict=True):
            if candidate < position:
                continue
            episode = self._new_episode(first_index + candidate, tuple(four))
            stop = min(count, candidate + episode.length)
            found.append(Segment(episode, candidate, stop))
            position = candidate + episode.length
            if position > count:
                self.active = episode
        return found

    def apply(
        self,
        segments: list[Segment],
        first_index: int,
        values: npt.NDArray[np.float64],
        kinds: npt.NDArray[np.int8],
        params: NormalParameters,
        readings_per_second: float,
        pattern_period_seconds: float,
    ) -> None:
        """Change ``values`` in place for each segment and mark ``kinds``."""
        behaviour = self.behaviour
        means = np.array([params.temperature.mean, params.vibration.mean, params.voltage.mean])
        for seg in segments:
            episode, lo, hi = seg.episode, seg.lo, seg.hi
            kinds[lo:hi] = KIND_CODES[episode.kind]
            offsets = np.arange(first_index + lo, first_index + hi) - episode.start_index
            if episode.kind == "spike":
                column = values[lo:hi, episode.parameter]
                if episode.direction > 0:
                    column *= episode.magnitude
                else:
                    column /= episode.magnitude
            elif episode.kind == "trend":
                progress = (offsets + 1) / episode.length
                values[lo:hi, episode.parameter] *= (
                    1.0 + episode.direction * episode.magnitude * progress
                )
            elif episode.kind == "pattern":
                phase = 2.0 * np.pi * offsets / (pattern_period_seconds * readings_per_second)
                wave = np.sin(phase) * PATTERN_AMPLITUDE * behaviour.severity
                values[lo:hi, 0] += wave * means[0]
                values[lo:hi, 1] -= wave * means[1]
            elif episode.kind == "noise":
                draws = self.noise.standard_normal((hi - lo, 3))
                spread = behaviour.noise_factor * behaviour.severity
                scale = np.array([spread, spread * behaviour.vibration_noise_multiplier, spread])
                values[lo:hi] *= 1.0 + draws * scale
            elif episode.kind == "missing_data":
                values[lo:hi] = np.nan
        # Vibration amplitude and supply voltage cannot go negative.
        np.maximum(values[:, 1:], 0.0, out=values[:, 1:])
