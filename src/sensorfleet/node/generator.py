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
from .layout import CLASSIC, TableLayout
from .profiles import Behaviour, behaviour_of
from .readings import KIND_CODES, Block, Labels
from .signal import baseline
from .stream import MICROS, ReadingStream


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
        return identity_labels(self.identity)

    @property
    def layout(self) -> TableLayout:
        return CLASSIC


def identity_labels(identity: Identity) -> Labels:
    """The identity fields stamped on each of a sensor's rows, whatever its type."""
    return Labels(
        identity.id,
        identity.firmware_version,
        identity.model,
        identity.manufacturer,
        identity.location,
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
class _State:
    """What producing readings changes: the random streams and the episode in progress."""

    rng_states: tuple[dict[str, Any], ...]
    active: Episode | None
    forced_next: tuple[str, int] | None


class SensorGenerator(ReadingStream[Block]):
    """Produces the readings of one classic sensor (temperature, vibration, voltage), block
    by block; the schedule, look-ahead and rewind are ``ReadingStream``'s."""

    def __init__(self, settings: Settings, seed: int, start_epoch: float) -> None:
        super().__init__(start_epoch)
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
        self._episodes: list[Episode] = []  # episodes touching the latest produced block

    @property
    def readings_per_second(self) -> float:
        return self.settings.readings_per_second

    @property
    def _period_us(self) -> float:
        return MICROS / self.settings.readings_per_second

    def reconfigure(self, settings: Settings) -> None:
        """Use ``settings`` from the next reading on; the schedule keeps its phase."""
        self._rewind()
        if settings.readings_per_second != self.settings.readings_per_second:
            self._rebase()
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

    # ---- the stream's state, for the look-ahead's rewind ------------------------------------
    def _state(self) -> object:
        return _State(
            tuple(dict(rng.bit_generator.state) for rng in self._rngs),
            self.anomalies.active,
            self.anomalies.forced_next,
        )

    def _restore(self, state: object) -> None:
        assert isinstance(state, _State)
        for rng, rng_state in zip(self._rngs, state.rng_states, strict=True):
            rng.bit_generator.state = rng_state
        self.anomalies.active = state.active
        self.anomalies.forced_next = state.forced_next

    def _concat(self, parts: list[Block]) -> Block:
        return Block.concat(parts)

    # ---- producing ----------------------------------------------------------------------
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
