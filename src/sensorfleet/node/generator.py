"""One sensor's reading stream: seeded randomness + signal + anomalies → blocks.

``SensorGenerator.generate(count)`` returns the next ``count`` readings as one
vectorised block. It never touches a database or the real clock: readings
are scheduled exactly ``1 / readings_per_second`` apart from an origin, so the
same seed, settings, identity and start time always give identical blocks,
however the caller splits them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .anomalies import AnomalyProcess, Episode, Mix, calibrate
from .config import Config
from .identity import Identity
from .profiles import Behaviour, behaviour_of
from .readings import KIND_CODES, Block, Labels
from .signal import baseline

MICROS = 1_000_000
# Live sensors generate this much ahead in one vectorised call (bounded in readings).
LOOKAHEAD_SECONDS = 10.0
MAX_LOOKAHEAD_READINGS = 10_000


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a stream, resolved once per (re)configuration."""

    config: Config
    identity: Identity
    behaviour: Behaviour
    mix: Mix

    @classmethod
    def resolve(cls, config: Config, identity: Identity) -> Settings:
        behaviour = behaviour_of(config.profiles, identity)
        mix = calibrate(config.anomalies, behaviour, config.simulation.readings_per_second)
        return cls(config, identity, behaviour, mix)

    @property
    def readings_per_second(self) -> float:
        return self.config.simulation.readings_per_second

    @property
    def labels(self) -> Labels:
        ident = self.identity
        return Labels(
            ident.id, ident.firmware_version, ident.model, ident.manufacturer, ident.location
        )


def stream_seed(seed: int, sensor_id: str) -> np.random.SeedSequence:
    """Seed material unique to (seed, sensor id): same seed, other sensor, other stream."""
    digest = hashlib.blake2b(sensor_id.encode(), digest_size=16).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, *words])


@dataclass(frozen=True)
class EpisodeView:
    """An anomaly episode as seen from outside the loop: a copy, never the live one."""

    kind: str
    forced: bool
    pending: bool = False  # forced, and starts with the next reading
    length_readings: int | None = None
    remaining_readings: int | None = None
    started_at: float | None = None  # epoch of its first reading


@dataclass(frozen=True)
class _Snapshot:
    """Generator state at the start of a look-ahead block (to rewind to)."""

    rng_states: tuple[dict[str, Any], ...]
    active: Episode | None
    forced_next: tuple[str, int] | None
    index: int


class SensorGenerator:
    """Produces the readings of one sensor, block by block.

    Live sensors read ahead: ``lookahead`` readings are generated in one
    vectorised call and served as they fall due, which makes a 1 reading/s
    sensor about as cheap as a fast one. Anything that changes the stream
    from "now" (new settings, a forced or ended anomaly) first rewinds to the
    look-ahead's start and replays what was already served; because the
    stream does not depend on block sizes, the replay is exact.
    """

    def __init__(self, settings: Settings, seed: int, start_epoch: float) -> None:
        noise, events, details, episode_noise = (
            np.random.default_rng(s) for s in stream_seed(seed, settings.identity.id).spawn(4)
        )
        self.settings = settings
        self.seed = seed
        self._noise = noise
        self._rngs = (noise, events, details, episode_noise)
        self.anomalies = AnomalyProcess(
            events, details, episode_noise, settings.mix, settings.behaviour
        )
        self.next_index = 0  # next reading to serve
        self._origin_index = 0
        self._origin_us = round(start_epoch * MICROS)
        self._produced = 0  # next reading to produce (ahead of next_index when reading ahead)
        self._ahead: Block | None = None
        self._ahead_snapshot: _Snapshot | None = None
        self._episodes: list[Episode] = []  # episodes touching the latest produced block

    @property
    def lookahead(self) -> int:
        """Readings produced per call when serving a few at a time."""
        wanted = round(LOOKAHEAD_SECONDS * self.settings.readings_per_second)
        return max(1, min(MAX_LOOKAHEAD_READINGS, wanted))

    # ---- schedule (scalar arithmetic: these run for every sensor on every tick) -------
    def _time_us(self, index: int) -> int:
        period_us = MICROS / self.settings.readings_per_second
        # Python's round() and numpy's rint both round half to even: same instants.
        return self._origin_us + round((index - self._origin_index) * period_us)

    def time_of(self, index: int) -> float:
        """Scheduled epoch seconds of reading ``index``."""
        return self._time_us(index) / MICROS

    def _times_us(self, first: int, count: int) -> np.ndarray:
        steps = np.arange(
            first - self._origin_index, first - self._origin_index + count, dtype=np.float64
        )
        period_us = MICROS / self.settings.readings_per_second
        return self._origin_us + np.rint(steps * period_us).astype(np.int64)

    def index_after(self, epoch: float) -> int:
        """Index of the first reading scheduled strictly after ``epoch``."""
        return self._first_index_where(round(epoch * MICROS), inclusive=True)

    def index_before(self, epoch: float) -> int:
        """Index of the first reading scheduled at or after ``epoch`` (exclusive bound)."""
        return self._first_index_where(round(epoch * MICROS), inclusive=False)

    def _first_index_where(self, target: int, inclusive: bool) -> int:
        period_us = MICROS / self.settings.readings_per_second
        # The arithmetic answer, then at most a step either way for rounding.
        guess = self._origin_index + max(0, int((target - self._origin_us) // period_us) + 1)

        def past(index: int) -> bool:
            scheduled = self._time_us(index)
            return scheduled > target if inclusive else scheduled >= target

        while not past(guess):
            guess += 1
        while guess > self._origin_index and past(guess - 1):
            guess -= 1
        return guess

    # ---- changing the stream from the next reading on ---------------------------------
    def reconfigure(self, settings: Settings) -> None:
        """Use ``settings`` from the next reading on; the schedule keeps its phase."""
        self._rewind()
        if settings.readings_per_second != self.settings.readings_per_second:
            self._origin_us = self._time_us(self.next_index)
            self._origin_index = self.next_index
        self.settings = settings
        self.anomalies.reconfigure(settings.mix, settings.behaviour)

    def force_anomaly(self, kind: str, length: int | None = None) -> int:
        """Start an episode of ``kind`` at the next reading, lasting ``length`` readings
        (default: the episode length the anomaly mix gives ``kind``); return the length."""
        if length is None:
            length = self.settings.mix.lengths.get(kind, 1)
        self._rewind()
        self.anomalies.force(kind, length)
        return length

    def readings_in(self, seconds: float) -> int:
        """How many readings ``seconds`` hold at the current rate (at least one)."""
        return max(1, round(seconds * self.settings.readings_per_second))

    def end_anomaly(self) -> str | None:
        """End the current (or pending forced) episode; return its type, if any."""
        self._rewind()
        ended = self.current_episode()
        kind = ended.kind if ended else None
        if kind is None and self.anomalies.forced_next is not None:
            kind = self.anomalies.forced_next[0]
        self.anomalies.clear()
        self._episodes = []
        return kind

    def current_episode(self) -> Episode | None:
        """The episode the latest served reading belongs to, if it is still running."""
        last = self.next_index - 1
        for episode in self._episodes:
            if (
                episode.start_index <= last < episode.end_index
                and episode.end_index > self.next_index
            ):
                return episode
        active = self.anomalies.active
        if self._ahead is None and active is not None and active.start_index <= last:
            return active
        return None

    def episode_view(self) -> EpisodeView | None:
        """The current (or pending forced) episode, copied for readers outside the loop."""
        episode = self.current_episode()
        if episode is not None:
            return EpisodeView(
                kind=episode.kind,
                forced=episode.forced,
                length_readings=episode.length,
                remaining_readings=max(0, episode.end_index - self.next_index),
                started_at=self.time_of(episode.start_index),
            )
        pending = self.anomalies.forced_next
        if pending is not None:
            return EpisodeView(kind=pending[0], forced=True, pending=True)
        return None

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            tuple(dict(rng.bit_generator.state) for rng in self._rngs),
            self.anomalies.active,
            self.anomalies.forced_next,
            self._produced,
        )

    def _rewind(self) -> None:
        """Drop readings produced ahead but not served, leaving the state at ``next_index``."""
        if self._ahead is None or self._produced == self.next_index:
            self._ahead = None
            return
        snapshot = self._ahead_snapshot
        assert snapshot is not None
        for rng, state in zip(self._rngs, snapshot.rng_states, strict=True):
            rng.bit_generator.state = state
        self.anomalies.active = snapshot.active
        self.anomalies.forced_next = snapshot.forced_next
        self._produced = snapshot.index
        served = self.next_index - snapshot.index
        self._ahead = None
        if served:
            self._produce(served)  # identical to what was served: the stream is block-invariant

    # ---- producing ----------------------------------------------------------------------
    def generate(self, count: int) -> Block:
        """The next ``count`` readings."""
        if self._ahead is None and count >= self.lookahead:
            block = self._produce(count)  # large requests (backfill) need no look-ahead
            self.next_index = self._produced
            return block
        parts = []
        while count > 0:
            if self._ahead is None or self._produced == self.next_index:
                self._ahead_snapshot = self._snapshot()
                self._ahead = self._produce(max(count, self.lookahead))
            offset = self.next_index - self._ahead.first_index
            take = min(count, len(self._ahead) - offset)
            parts.append(self._ahead.slice(offset, offset + take))
            self.next_index += take
            count -= take
        return parts[0] if len(parts) == 1 else Block.concat(parts)

    def _produce(self, count: int) -> Block:
        settings, first = self.settings, self._produced
        config = settings.config
        times_us = self._times_us(first, count)
        normals = self._noise.standard_normal((count, 3))
        values = baseline(
            times_us / MICROS,
            normals,
            config.normal_parameters,
            settings.behaviour,
            settings.identity.timezone,
        )
        kinds = np.zeros(count, dtype=np.int8)
        segments = self.anomalies.segments(first, count)
        self._episodes = [segment.episode for segment in segments]
        if segments:
            self.anomalies.apply(
                segments,
                first,
                values,
                kinds,
                config.normal_parameters,
                settings.readings_per_second,
                config.anomalies.types.pattern.period_seconds,
            )
        np.round(values, 4, out=values)
        keep = None
        if config.anomalies.types.missing_data.record == "skip" and segments:
            keep = kinds != KIND_CODES["missing_data"]
        self._produced = first + count
        return Block(first, times_us, values, kinds, settings.labels, keep)
