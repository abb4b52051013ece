"""Normal operation: Gaussian readings with the daily cycle and location effects.

Pure functions of time and pre-drawn standard normals, vectorised over a
block; randomness comes in as an argument so the caller owns the seed.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .config import NormalParameters, ParameterRange
from .profiles import Behaviour

SECONDS_PER_DAY = 86_400.0
PEAK_HOUR = 15.0  # daily temperature maximum at 15:00 local, minimum at 03:00
WORK_RAMP_HOURS = 1.0  # machines warm up and cool down over about an hour

FloatArray = npt.NDArray[np.float64]


@lru_cache(maxsize=65_536)
def _utc_offset_seconds(zone: str, hour_bucket: int) -> float:
    """UTC offset of ``zone`` during one UTC hour (DST changes on hour boundaries)."""
    moment = datetime.fromtimestamp(hour_bucket * 3600, UTC).astimezone(zoneinfo.ZoneInfo(zone))
    offset = moment.utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def local_seconds(epoch_seconds: FloatArray, zone: str) -> FloatArray:
    """Epoch seconds shifted to local wall-clock time in ``zone``."""
    if zone == "UTC":
        return epoch_seconds
    buckets = np.floor(epoch_seconds / 3600.0).astype(np.int64)
    unique, inverse = np.unique(buckets, return_inverse=True)
    offsets = np.array([_utc_offset_seconds(zone, int(b)) for b in unique])
    shifted: FloatArray = epoch_seconds + offsets[inverse]
    return shifted


def daily_cycle(hour_of_day: FloatArray) -> FloatArray:
    """+1 at 15:00, -1 at 03:00, sinusoidal in between."""
    cycle: FloatArray = np.cos(2.0 * np.pi * (hour_of_day - PEAK_HOUR) / 24.0)
    return cycle


def work_hours_weight(
    hour_of_day: FloatArray, weekday: npt.NDArray[np.int64], hours: tuple[int, int]
) -> FloatArray:
    """1 during weekday work hours, 0 outside, with a short ramp at each end."""
    start, end = hours
    rising = np.clip((hour_of_day - start) / WORK_RAMP_HOURS + 1.0, 0.0, 1.0)
    falling = np.clip((end - hour_of_day) / WORK_RAMP_HOURS, 0.0, 1.0)
    weight: FloatArray = np.minimum(rising, falling) * (weekday < 5)
    return weight


def _clip(values: FloatArray, limits: ParameterRange) -> FloatArray:
    clipped: FloatArray = np.clip(values, limits.min, limits.max)
    return clipped


def baseline(
    epoch_seconds: FloatArray,
    normals: FloatArray,
    params: NormalParameters,
    behaviour: Behaviour,
    zone: str,
) -> FloatArray:
    """Normal readings ``(n, 3)`` for the given times from ``(n, 3)`` standard normals.

    Temperature follows the local daily cycle (amplitude one standard
    deviation, scaled by location) plus warm work hours where the location
    says so; vibration and voltage are Gaussian around their means with
    location and firmware spreads. Each parameter is clipped to [min, max].
    """
    place = behaviour.location
    local = local_seconds(epoch_seconds, zone)
    hour = (local % SECONDS_PER_DAY) / 3600.0
    weekday = (np.floor(local / SECONDS_PER_DAY).astype(np.int64) + 3) % 7  # 1970-01-01: Thu
    temp, vib, volt = params.temperature, params.vibration, params.voltage

    temperature = (
        temp.mean
        + temp.std_dev * place.daily_amplitude_multiplier * daily_cycle(hour)
        + temp.std_dev * normals[:, 0] * place.temperature_std_multiplier
    )
    if place.work_hours_temperature_offset_sd:
        weight = work_hours_weight(hour, weekday, place.work_hours)
        temperature = temperature + temp.std_dev * place.work_hours_temperature_offset_sd * weight
    vibration = vib.mean + vib.std_dev * place.vibration_std_multiplier * normals[:, 1]
    voltage = volt.mean + volt.std_dev * behaviour.voltage_std_multiplier * normals[:, 2]
    return np.column_stack((_clip(temperature, temp), _clip(vibration, vib), _clip(voltage, volt)))
