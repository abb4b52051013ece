"""The HVAC model: COP falls as it gets warmer outside, and falls further with dirty coils."""

from __future__ import annotations

import datetime
import math

import numpy as np
from equipment_helpers import model, simulator

JANUARY = datetime.datetime(2027, 1, 11, tzinfo=datetime.UTC).timestamp()
JULY = datetime.datetime(2027, 7, 12, tzinfo=datetime.UTC).timestamp()
DAY_READINGS = 8640  # every 10 s
# Rated COP 3.2 at 50 °C condensing, 2.5 % less per kelvin: −0.08 per K of condensing temperature.
COP_PER_KELVIN = -0.08


def test_cop_falls_with_outdoor_temperature() -> None:
    """In summer COP drops by 0.08 per °C outdoors (condensing 15 K above it); winter is better."""
    hvac = model("hvac")
    cooling = hvac.states.index("cooling")
    summer = simulator("hvac", start=JULY).generate(3 * DAY_READINGS)
    winter = simulator("hvac", start=JANUARY).generate(3 * DAY_READINGS)
    hot = summer.state == cooling
    outdoor, cop = summer.channels["outdoor_air_c"][hot], summer.channels["cop"][hot]
    above_floor = outdoor + 15 > 31  # head-pressure control holds 30 °C condensing below that
    slope = np.polyfit(outdoor[above_floor], cop[above_floor], 1)[0]
    assert abs(slope - COP_PER_KELVIN) < 0.1 * abs(COP_PER_KELVIN)
    cold = winter.state == cooling
    assert winter.channels["cop"][cold].mean() > cop.mean() + 0.3
    # Power per kW of cooling is 1/COP (fans aside): more electricity per kW in summer.
    per_kw_summer = np.mean(
        (summer.channels["power_kw"][hot] - 6) / summer.channels["cooling_load_kw"][hot]
    )
    assert math.isclose(per_kw_summer, np.mean(1 / cop), rel_tol=0.02)


def test_dirty_coils_lower_cop_until_condition_based_maintenance() -> None:
    """Fouling raises condensing temperature linearly to +12 K over its course: COP falls with
    it and energy rises, until health drops below 0.4 (75 % of the course) and service cleans
    the coils."""
    hvac = model("hvac")
    days, course_days = 20, 16
    clean = simulator("hvac", start=JULY).generate(days * DAY_READINGS)
    sim = simulator("hvac", start=JULY)
    sim.force_fault("dirty_coils", severity=1.0, duration_seconds=course_days * 86_400)
    dirty = sim.generate(days * DAY_READINGS)
    service = int(np.argmax(dirty.maintenance == 1))
    assert service == round(0.75 * course_days * DAY_READINGS)
    assert math.isclose(dirty.health[service], 0.4, abs_tol=1e-4)
    assert dirty.rul_seconds[service - 1] == 0.25 * course_days * 86_400 + 10
    cooling = (dirty.state == hvac.states.index("cooling"))[:service]
    progress = np.arange(service) / (course_days * DAY_READINGS)
    drop = (dirty.channels["cop"] - clean.channels["cop"])[:service]
    assert np.allclose(drop[cooling], COP_PER_KELVIN * 12 * progress[cooling], atol=0.01)
    energy_clean = clean.channels["energy_kwh"][service - 1]
    energy_dirty = dirty.channels["energy_kwh"][service - 1]
    assert energy_dirty > 1.03 * energy_clean
    done = service + int(np.argmax(dirty.maintenance[service:] == 0))
    assert (dirty.fault[:done] == hvac.faults.index("dirty_coils")).all()
    assert (dirty.fault[done:] == -1).all() and (dirty.health[done:] == 1.0).all()


def test_compressor_stages_follow_the_cooling_load() -> None:
    """Four 62.5 kW stages: the number running is the least that covers the load, and
    summer days run more of them than winter days."""
    summer = simulator("hvac", start=JULY).generate(DAY_READINGS)
    winter = simulator("hvac", start=JANUARY).generate(DAY_READINGS)
    for block in (summer, winter):
        load, stages = block.channels["cooling_load_kw"], block.channels["stages_on"]
        clear = np.abs(load / 62.5 - np.round(load / 62.5)) * 62.5 > 0.1  # load is rounded
        assert np.array_equal(stages[clear], np.ceil(load[clear] / 62.5))
    cooling = summer.channels["cooling_load_kw"] > 0
    cold = winter.channels["cooling_load_kw"] > 0
    assert summer.channels["stages_on"][cooling].mean() > winter.channels["stages_on"][cold].mean()
