"""The plant's calendar: shifts, production factor, weekends and the outdoor temperature.

Pure functions of epoch seconds, vectorised over a block. Shifts repeat every
day; a minute-of-day table holds each minute's shift factor and how long ago
its shift (or the gap between shifts) began, so a reading's production factor
and shift are two table look-ups, never a loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .schema import Climate, Harmonic, Schedule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MINUTES_PER_DAY = 1440
SECONDS_PER_DAY = 86_400.0
DAYS_PER_YEAR = 365.2425
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0


@dataclass(frozen=True)
class Times:
    """Calendar features of a block's readings."""

    hour: FloatArray  # local hour of day, 0-24
    weekday: IntArray  # 0 Monday … 6 Sunday
    day_of_week: FloatArray  # weekday plus the fraction of the day, 0-7
    day_of_year: FloatArray  # 0-365.24
    production: FloatArray  # the schedule's factor, 0-1
    shift_id: IntArray  # local minute the current shift (or gap) began: one id per shift
    outdoor_temp_c: FloatArray


class Calendar:
    """A model's schedule and climate, evaluated at any instants."""

    def __init__(self, schedule: Schedule, climate: Climate, utc_offset_hours: float) -> None:
        self.climate = climate
        self.weekend_factor = schedule.weekend_factor
        self.offset_seconds = utc_offset_hours * 3600.0
        factors = np.full(MINUTES_PER_DAY, schedule.off_shift_factor)
        covered = np.zeros(MINUTES_PER_DAY, dtype=bool)
        starts = set()
        for shift in schedule.shifts:
            start, end = round(shift.start_hour * 60), round(shift.end_hour * 60) % 1440
            minutes = np.arange(start, start + (end - start) % 1440 or 1440) % 1440
            factors[minutes] = shift.factor
            covered[minutes] = True
            starts.add(start)
        for shift in schedule.shifts:
            end = round(shift.end_hour * 60) % 1440
            if not covered[end]:
                starts.add(end)  # a gap without shift begins here
        if not starts:
            starts.add(0)
        ordered = sorted(starts)
        since = np.empty(MINUTES_PER_DAY, dtype=np.int64)
        for minute in range(MINUTES_PER_DAY):
            previous = max((s for s in ordered if s <= minute), default=ordered[-1] - 1440)
            since[minute] = minute - previous
        self._factors = factors
        self._factor_list = factors.tolist()
        self._since_start = since

    def times(self, epoch_seconds: FloatArray) -> Times:
        """Every calendar feature at ``epoch_seconds``."""
        local = epoch_seconds + self.offset_seconds
        days = np.floor(local / SECONDS_PER_DAY)
        seconds_of_day = local - days * SECONDS_PER_DAY
        hour = seconds_of_day / 3600.0
        weekday = ((days.astype(np.int64) + EPOCH_WEEKDAY) % 7).astype(np.int64)
        minute_of_day = np.minimum((seconds_of_day // 60).astype(np.int64), MINUTES_PER_DAY - 1)
        production = self._factors[minute_of_day] * np.where(weekday >= 5, self.weekend_factor, 1)
        absolute_minute = days.astype(np.int64) * MINUTES_PER_DAY + minute_of_day
        day_of_year = np.mod(days, DAYS_PER_YEAR) + hour / 24.0
        climate = self.climate
        outdoor = (
            climate.mean_c
            + climate.seasonal_amplitude_c
            * np.cos(2 * np.pi * (day_of_year - climate.warmest_day) / DAYS_PER_YEAR)
            + climate.daily_amplitude_c * np.cos(2 * np.pi * (hour - climate.warmest_hour) / 24)
        )
        return Times(
            hour=hour,
            weekday=weekday,
            day_of_week=weekday + hour / 24.0,
            day_of_year=day_of_year,
            production=production,
            shift_id=absolute_minute - self._since_start[minute_of_day],
            outdoor_temp_c=outdoor,
        )

    def production_at(self, epoch_seconds: float) -> float:
        """The production factor at one instant (for events): ``times`` in scalar arithmetic."""
        local = epoch_seconds + self.offset_seconds
        days = math.floor(local / SECONDS_PER_DAY)
        minute = min(int((local - days * SECONDS_PER_DAY) // 60), MINUTES_PER_DAY - 1)
        weekend = (days + EPOCH_WEEKDAY) % 7 >= 5
        factor: float = self._factor_list[minute]
        return factor * self.weekend_factor if weekend else factor

    def production_many(self, epoch_seconds: FloatArray) -> FloatArray:
        """``production_at`` at many instants: the same arithmetic, element by element."""
        local = epoch_seconds + self.offset_seconds
        days = np.floor(local / SECONDS_PER_DAY)
        minute = np.minimum(
            ((local - days * SECONDS_PER_DAY) // 60).astype(np.int64), MINUTES_PER_DAY - 1
        )
        weekend = (days.astype(np.int64) + EPOCH_WEEKDAY) % 7 >= 5
        factor = self._factors[minute]
        production: FloatArray = np.where(weekend, factor * self.weekend_factor, factor)
        return production


def harmonic(term: Harmonic | None, phase: FloatArray, period: float) -> FloatArray | float:
    """``amplitude · cos(2π (phase − peak) / period)``, or 0 without a term."""
    if term is None:
        return 0.0
    wave: FloatArray = term.amplitude * np.cos(2 * np.pi * (phase - term.peak) / period)
    return wave
