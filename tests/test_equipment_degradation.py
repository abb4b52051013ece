"""Degradation curves and the plant calendar: closed forms checked against first principles."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest
from equipment_helpers import model

from sensorfleet.equipment.calendar import Calendar
from sensorfleet.equipment.degradation import lagged_progress, progress, time_to_progress


@pytest.mark.parametrize("shape", ["step", "linear", "exponential"])
def test_lagged_progress_solves_the_first_order_lag(shape: str) -> None:
    """The closed form equals a fine numerical integration of dy/dt = (u − y)/L, past the course."""
    course, growth, lag, dt = 1000.0, 2.0, 200.0, 0.01
    times = np.arange(0.0, 3000.0, dt)
    inputs = progress(shape, times, course, growth)
    integrated = np.empty_like(times)
    y = 0.0
    for i, u in enumerate(inputs):
        integrated[i] = y
        y += (u - y) / lag * dt
    picks = [int(x / dt) for x in (100, 500, 1000, 1500, 2900)]
    exact = lagged_progress(shape, times[picks], course, growth, lag)
    assert np.allclose(exact, integrated[picks], atol=2e-4)


def test_time_to_progress_inverts_progress() -> None:
    """The instant a curve reaches a level is where progress equals that level."""
    for shape in ("linear", "exponential"):
        for level in (0.1, 0.5, 0.875, 1.0):
            at = time_to_progress(shape, level, 604_800.0, 1.267)
            assert math.isclose(float(progress(shape, np.array([at]), 604_800.0, 1.267)[0]), level)
    assert time_to_progress("step", 0.5, 100.0, 1.0) == 0.0


def test_calendar_shifts_weekends_and_season() -> None:
    """Shift factors by local hour, the weekend factor, one id per shift, a warm July."""
    spec = model("motor").spec
    calendar = Calendar(spec.schedule, spec.climate, utc_offset_hours=1.0)
    friday = datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC).timestamp()
    hours = np.arange(0, 48, 0.5)
    times = calendar.times(friday + hours * 3600)
    local = hours + 1  # UTC+1
    expected = np.where((local % 24 >= 6) & (local % 24 < 22), 1.0, 0.5)
    expected = np.where(local >= 24, expected * 0.3, expected)  # Saturday from local midnight
    assert np.allclose(times.production, expected)
    changes = np.flatnonzero(np.diff(times.shift_id)) + 1
    assert sorted({local[i] % 24 for i in changes}) == [6.0, 14.0, 22.0]
    july = datetime.datetime(2027, 7, 20, 14, tzinfo=datetime.UTC).timestamp()
    january = datetime.datetime(2027, 1, 20, 14, tzinfo=datetime.UTC).timestamp()
    warm, cold = calendar.times(np.array([july, january])).outdoor_temp_c
    assert warm - cold > 15  # twice the seasonal amplitude of 9 °C, nearly
