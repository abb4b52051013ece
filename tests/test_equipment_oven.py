"""The oven and the heater: first-order heating, and spikes, drops and hunting that are
the size the thermal physics allows."""

from __future__ import annotations

import numpy as np
import pytest
from equipment_helpers import model, simulator

# name → (air channel, set point, heating state, heating time constant in s)
OVENS = {
    "oven": ("cavity_temp_c", 220.0, "baking", 600.0),
    "heater": ("cabinet_temp_c", 75.0, "heating", 300.0),
}
AMBIENT = 22.0


@pytest.mark.parametrize("name", OVENS)
def test_heat_up_follows_the_first_order_curve(name: str) -> None:
    """From a cold start the air reaches ambient + (set point − ambient)(1 − e^(−t/τ)):
    63 % of the rise after one time constant."""
    air, setpoint, heating, tau = OVENS[name]
    spec = model(name)
    sim = simulator(name)
    block = sim.generate(30 * 8640)
    on = np.flatnonzero(
        (block.state[1:] == spec.states.index(heating)) & (block.state[:-1] != block.state[1:])
    )
    starts = [i + 1 for i in on if block.channels[air][i] < AMBIENT + 2]
    assert starts, "no cold start in a month"
    start = starts[0]
    steps = round(tau / 10)
    rise = block.channels[air][start + steps] - AMBIENT
    assert abs(rise / (setpoint - AMBIENT) - (1 - np.exp(-1))) < 0.05
    assert (block.channels["heating_on"][start : start + steps] == 1).all()


@pytest.mark.parametrize("name", OVENS)
def test_a_spike_overshoots_by_its_severity_and_hunting_swings_every_four_minutes(
    name: str,
) -> None:
    """A stuck relay lifts the air by 100 K × severity (0.5-1: +50-100 K) after its 1 min lag;
    a hunting thermostat swings the reading ± amplitude × severity with a 4 min period."""
    air, setpoint, heating, _ = OVENS[name]
    spec = model(name)
    sim = simulator(name)
    block = sim.generate(8640)
    while not (block.state[-360:] == spec.states.index(heating)).all():
        block = sim.generate(360)
    snapshot = sim.snapshot()
    steady = sim.generate(120)
    sim.restore(snapshot)
    sim.force_fault("spike", severity=0.7, duration_seconds=1200)
    spiked = sim.generate(120)
    lift = spiked.channels[air] - steady.channels[air]
    assert abs(np.median(lift[60:]) - 70) < 1
    assert lift[1] < 70 * (1 - np.exp(-20 / 60)) + 1  # the lag
    sim.restore(snapshot)
    sim.force_fault("oscillation", severity=1.0, duration_seconds=1200)
    hunting = sim.generate(120)
    swing = hunting.channels["temperature_c"] - hunting.channels[air]
    amplitude = 15 if name == "oven" else 8
    assert abs(np.percentile(swing, 97) - amplitude) < 2
    spectrum = np.abs(np.fft.rfft(swing - swing.mean()))
    period_s = 120 * 10 / int(np.argmax(spectrum))
    assert period_s == 240
    assert abs(np.median(steady.channels[air]) - setpoint) < 2
