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

import numpy as np

from .anomalies import AnomalyProcess, Mix, calibrate
from .config import Config
from .identity import Identity
from .profiles import Behaviour, resolve
from .readings import KIND_CODES, Block, Labels
from .signal import baseline

MICROS = 1_000_000


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a stream, resolved once per (re)configuration."""

    config: Config
    identity: Identity
    behaviour: Behaviour
    mix: Mix

    @classmethod
    def resolve(cls, config: Config, identity: Identity) -> Settings:
        behaviour = resolve(
            config.profiles,
            firmware_version=identity.firmware_version,
            manufacturer=identity.manufacturer,
            model=identity.model,
            location=identity.location,
        )
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


class SensorGenerator:
    """Produces the readings of one sensor, block by block."""

    def __init__(self, settings: Settings, seed: int, start_epoch: float) -> None:
        noise, events, details, episode_noise = (
            np.random.default_rng(s) for s in stream_seed(seed, settings.identity.id).spawn(4)
        )
        self.settings = settings
        self.seed = seed
        self._noise = noise
        self.anomalies = AnomalyProcess(
            events, details, episode_noise, settings.mix, settings.behaviour
        )
        self.next_index = 0
        self._origin_index = 0
        self._origin_us = round(start_epoch * MICROS)

    def time_of(self, index: int) -> float:
        """Scheduled epoch seconds of reading ``index``."""
        return float(self._times_us(index, 1)[0]) / MICROS

    def _times_us(self, first: int, count: int) -> np.ndarray:
        steps = np.arange(
            first - self._origin_index, first - self._origin_index + count, dtype=np.float64
        )
        period_us = MICROS / self.settings.readings_per_second
        return self._origin_us + np.rint(steps * period_us).astype(np.int64)

    def reconfigure(self, settings: Settings) -> None:
        """Use ``settings`` from the next reading on; the schedule keeps its phase."""
        if settings.readings_per_second != self.settings.readings_per_second:
            self._origin_us = int(self._times_us(self.next_index, 1)[0])
            self._origin_index = self.next_index
        self.settings = settings
        self.anomalies.reconfigure(settings.mix, settings.behaviour)

    def generate(self, count: int) -> Block:
        """The next ``count`` readings."""
        settings, first = self.settings, self.next_index
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
        self.next_index = first + count
        return Block(first, times_us, values, kinds, settings.labels, keep)

    def index_after(self, epoch: float) -> int:
        """Index of the first reading scheduled strictly after ``epoch``."""
        return self._first_index_where(epoch, inclusive=True)

    def index_before(self, epoch: float) -> int:
        """Index of the first reading scheduled at or after ``epoch`` (exclusive bound)."""
        return self._first_index_where(epoch, inclusive=False)

    def _first_index_where(self, epoch: float, inclusive: bool) -> int:
        target = round(epoch * MICROS)
        period_us = MICROS / self.settings.readings_per_second
        guess = self._origin_index + max(0, int((target - self._origin_us) // period_us))
        guess = max(guess - 1, self._origin_index)

        def past(index: int) -> bool:
            scheduled = int(self._times_us(index, 1)[0])
            return scheduled > target if inclusive else scheduled >= target

        while not past(guess):
            guess += 1
        while guess > self._origin_index and past(guess - 1):
            guess -= 1
        return guess
