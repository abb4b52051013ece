"""The energy-managed machines: every one meters the same six electrical channels, and
they agree with each other on every reading."""

from __future__ import annotations

import numpy as np
import pytest
from equipment_helpers import model, simulator

ENERGY_MODELS = ("compressor", "hvac", "motor", "hydraulic_pump", "injection_molding")
ENERGY_CHANNELS = {
    "power_kw",
    "energy_kwh",
    "voltage_v",
    "current_a",
    "power_factor",
    "frequency_hz",
}


@pytest.mark.parametrize("name", ENERGY_MODELS)
def test_three_phase_power_current_and_energy_agree(name: str) -> None:
    """Current is P / (√3 · V · PF) wherever the machine draws power, energy is the
    running sum of power × interval, and the supply sits at 50 Hz."""
    spec = model(name)
    assert {channel.name for channel in spec.channels} >= ENERGY_CHANNELS
    readings = round(6 * 3600 / spec.interval_seconds)
    block = simulator(name).generate(readings)
    ch = block.channels
    drawing = ch["power_kw"] > 5
    power, volts, factor = (
        ch["power_kw"][drawing],
        ch["voltage_v"][drawing],
        ch["power_factor"][drawing],
    )
    expected = power * 1000 / (np.sqrt(3) * volts * factor)
    # Power and power factor are reported rounded; current is computed before rounding.
    assert np.allclose(ch["current_a"][drawing], expected, rtol=0.01, atol=0.2)
    energy = np.cumsum(np.nan_to_num(ch["power_kw"])) * spec.interval_seconds / 3600
    assert abs(ch["energy_kwh"][-1] - energy[-1]) < 0.01 * energy[-1]
    assert abs(np.mean(ch["frequency_hz"]) - 50) < 0.01


def test_the_motor_drive_ramps_its_output_frequency_with_the_speed() -> None:
    """The VFD's output frequency is 50 Hz at the rated 1470 rpm and moves with the speed
    through every start and stop."""
    block = simulator("motor").generate(8640)
    speed, vfd = block.channels["speed_rpm"], block.channels["vfd_frequency_hz"]
    assert np.allclose(vfd, 50 * speed / 1470, atol=0.01)
    running = block.state == model("motor").states.index("running")
    assert abs(np.median(vfd[running]) - 50) < 0.1 and np.median(vfd[~running]) < 1
