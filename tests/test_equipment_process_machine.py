"""The streaming process machine: gradual failures that show in the channels they should,
in order."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

DAY_READINGS = 86_400 // 5


def test_bearing_failure_raises_vibration_before_temperature() -> None:
    """Bearing failure multiplies vibration by 3.55^(τ/T) from onset, while the bearing
    temperature follows only through its 2 h lag."""
    machine = model("process_machine")
    course = 7 * 86_400
    healthy = simulator("process_machine").generate(3 * DAY_READINGS)
    sim = simulator("process_machine")
    sim.force_fault("bearing_failure", duration_seconds=course)
    failing = sim.generate(3 * DAY_READINGS)
    running = (healthy.state == machine.states.index("running")) & (failing.state == healthy.state)
    t = np.arange(3 * DAY_READINGS) * 5
    day3 = running & (t > 2 * 86_400)
    ratio = failing.channels["vibration_mm_s"][day3] / healthy.channels["vibration_mm_s"][day3]
    assert abs(np.median(ratio / 3.55 ** (t[day3] / course)) - 1) < 0.02
    hotter = failing.channels["bearing_temperature_c"] - healthy.channels["bearing_temperature_c"]
    first_hour = t < 3600
    assert np.median(hotter[first_hour]) < 0.3


def test_an_oil_leak_lowers_the_level_linearly_to_a_trip() -> None:
    """An oil leak takes the level from 88 % down 40 points over its course, and the
    machine trips at the end; maintenance is reported an hour later."""
    machine = model("process_machine")
    sim = simulator("process_machine")
    sim.force_fault("oil_leak", duration_seconds=86_400)
    block = sim.generate(DAY_READINGS + 1440)
    level = block.channels["oil_level_pct"]
    middle = DAY_READINGS // 2
    assert abs(np.mean(level[middle - 50 : middle + 50]) - 68) < 0.5
    assert block.state[DAY_READINGS] == machine.states.index("fault")
    assert (block.maintenance[DAY_READINGS + 720 + 1 :] == 1).any()
