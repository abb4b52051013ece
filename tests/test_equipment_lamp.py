"""The lamp: power follows whether it is lit, and its three faults show as the document
describes them."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

DAY_READINGS = 8640
LAMP_W = 58.0


def test_power_and_energy_follow_the_lit_hours() -> None:
    """Every reading draws 58 W when lit and nothing when dark; a day's energy is 58 W ×
    the lit hours."""
    lamp = model("lamp")
    block = simulator("lamp").generate(DAY_READINGS)
    lit = block.channels["lamp_on"]
    assert (lit == (block.state == lamp.states.index("on"))).all()
    assert np.allclose(block.channels["power_w"], LAMP_W * lit, atol=1.5)
    hours_lit = lit.sum() * 10 / 3600
    assert abs(block.channels["energy_kwh"][-1] - LAMP_W * hours_lit / 1000) < 0.01


def test_flicker_stuck_on_and_stuck_off() -> None:
    """A flickering lamp is dark on about 40 % of the readings it should be lit; a welded
    relay keeps it lit while switched off; a failed tube trips it dark until replaced."""
    lamp = model("lamp")
    on, off = lamp.states.index("on"), lamp.states.index("off")
    sim = simulator("lamp")
    while sim.generate(360).state[-1] != on:
        pass
    sim.force_fault("flicker", duration_seconds=3600)
    flicker = sim.generate(360)
    should = flicker.state == on
    dark = np.mean(flicker.channels["lamp_on"][should] == 0)
    assert should.sum() > 100 and 0.33 < dark < 0.47
    assert (flicker.channels["power_w"][flicker.channels["lamp_on"] == 0] < 2).all()

    sim = simulator("lamp")
    sim.force_fault("stuck_on", duration_seconds=43_200)
    stuck = sim.generate(4320)
    assert (stuck.state == off).any()
    assert (stuck.channels["lamp_on"] == 1).all()

    sim = simulator("lamp")
    sim.force_fault("stuck_off")
    failed = sim.generate(1440 + 360)
    assert (failed.state[:1440] == lamp.states.index("fault")).all()
    assert (failed.channels["lamp_on"][:1440] == 0).all()
    assert (failed.maintenance[1440:] == 1).any()  # replaced four hours later
