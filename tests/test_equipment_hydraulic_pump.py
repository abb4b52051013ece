"""The hydraulic pump: input power follows pressure × flow, and wear costs flow, not power."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

DAY_READINGS = 86_400 // 30
HYDROMECHANICAL_EFFICIENCY = 0.9
NO_LOAD_KW = 2.5


def test_input_power_is_hydraulic_power_over_the_efficiencies() -> None:
    """While building, delivered hydraulic power p·Q/600 is the input power (less no-load
    losses) times volumetric × hydromechanical efficiency, 0.95 × 0.9; holding stays in
    the 150–200 bar band."""
    pump = model("hydraulic_pump")
    block = simulator("hydraulic_pump").generate(DAY_READINGS)
    build = block.state == pump.states.index("build")
    pressure, flow = block.channels["pressure_bar"], block.channels["flow_l_min"]
    shaft = block.channels["power_kw"] - NO_LOAD_KW
    busy = build & (pressure > 50)
    overall = np.median(pressure[busy] * flow[busy] / 600 / shaft[busy])
    assert abs(overall - 0.95 * HYDROMECHANICAL_EFFICIENCY) < 0.01
    hold = block.state == pump.states.index("hold")
    assert np.percentile(pressure[hold], 5) > 150 and np.percentile(pressure[hold], 95) < 200
    assert 10 < block.channels["power_kw"][build].max() < 50


def test_pump_wear_lowers_flow_at_the_same_power_until_overhaul() -> None:
    """Over a forced 4-day course, volumetric efficiency falls linearly from 0.95 to the
    0.80 overhaul limit: build flow falls by the same factor while input power stays, and
    the pump trips at the end of the course."""
    pump = model("hydraulic_pump")
    course = 4 * 86_400
    healthy = simulator("hydraulic_pump").generate(5 * DAY_READINGS)
    sim = simulator("hydraulic_pump")
    sim.force_fault("pump_wear", duration_seconds=course)
    worn = sim.generate(5 * DAY_READINGS)
    efficiency = worn.channels["volumetric_efficiency"]
    progress = np.arange(len(worn)) * 30 / course
    before = progress < 1
    assert np.allclose(efficiency[before], 0.95 - 0.15 * progress[before], atol=0.002)
    build = (worn.state == pump.states.index("build")) & (healthy.state == worn.state)
    late = build & (progress > 0.9) & before
    flow_ratio = np.median(worn.channels["flow_l_min"][late] / healthy.channels["flow_l_min"][late])
    assert abs(flow_ratio - np.median(efficiency[late]) / 0.95) < 0.01
    power_ratio = np.median(worn.channels["power_kw"][late] / healthy.channels["power_kw"][late])
    assert abs(power_ratio - 1) < 0.02
    trip = int(np.argmax(worn.state == pump.states.index("fault")))
    assert trip == int(np.ceil(course / 30))
    assert worn.rul_seconds[trip] == 0


def test_a_seal_leak_drains_the_tank_to_the_low_level_switch() -> None:
    """An external leak lowers the oil level linearly by 30 points over its course, from
    90 % to the 60 % low-level switch, which stops the pump."""
    pump = model("hydraulic_pump")
    sim = simulator("hydraulic_pump")
    sim.force_fault("seal_leak", duration_seconds=86_400)
    block = sim.generate(DAY_READINGS + 10)
    level = block.channels["oil_level_pct"]
    half = DAY_READINGS // 2
    assert abs(np.mean(level[half - 20 : half + 20]) - 75) < 0.5
    assert abs(np.mean(level[DAY_READINGS - 20 : DAY_READINGS]) - 60) < 0.6
    assert block.state[-1] == pump.states.index("fault")
