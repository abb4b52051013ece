"""The production machine: its ten sensors obey the machine's physics, and each failure
pattern shows in the sensors it should, together."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

from sensorfleet.equipment import EquipmentSimulator

DAY_READINGS = 86_400 // 10
CLAMP_CM2 = 50.0


def running_machine() -> EquipmentSimulator:
    """A machine half a day in whose last reading is running."""
    sim = simulator("production_machine")
    block = sim.generate(DAY_READINGS // 2)
    while block.state[-1] != model("production_machine").states.index("running"):
        block = sim.generate(30)
    return sim


def test_force_follows_pressure_and_current_follows_shaft_power() -> None:
    """Clamping force is pressure × 50 cm² on every reading; drive current is torque ×
    speed over voltage, efficiency and power factor; hydraulic pressure loss halves both
    pressure and force at the end of its course."""
    machine = model("production_machine")
    sim = simulator("production_machine")
    sim.force_fault("hydraulic_pressure_loss", duration_seconds=86_400)
    block = sim.generate(DAY_READINGS)
    pressure, force = block.channels["pressure_bar"], block.channels["force_kn"]
    assert np.allclose(force, pressure * CLAMP_CM2 / 100, atol=1.0)
    assert abs(np.mean(pressure[:60]) - 120) < 1 and abs(np.mean(pressure[-60:]) - 60) < 1.5
    running = block.state == machine.states.index("running")
    ch = block.channels
    shaft_kw = ch["torque_nm"] * ch["speed_rpm"] * 2 * np.pi / 60 / 1000
    expected = shaft_kw * 1000 / (np.sqrt(3) * ch["voltage_v"] * 0.85 * 0.9) + 3
    assert np.allclose(ch["current_a"][running], expected[running], atol=1.0)


def test_coolant_failure_cuts_flow_then_heats_the_spindle() -> None:
    """A coolant failure over 2 h takes flow to a fifth; the spindle temperature follows
    through a 10 min lag, so in the first 5 min flow has moved and temperature has not."""
    machine = model("production_machine")
    warm = running_machine()
    snapshot = warm.snapshot()
    healthy = warm.generate(720)
    warm.restore(snapshot)
    warm.force_fault("coolant_failure", duration_seconds=7200)
    faulty = warm.generate(720)
    both = (healthy.state == machine.states.index("running")) & (faulty.state == healthy.state)
    flow = faulty.channels["flow_l_min"] / np.maximum(healthy.channels["flow_l_min"], 1)
    hotter = faulty.channels["temperature_c"] - healthy.channels["temperature_c"]
    early, late = both & (np.arange(720) < 30), both & (np.arange(720) > 600)
    assert np.median(flow[late]) < 0.35 and np.median(flow[early]) < 0.99
    assert abs(np.median(hotter[early])) < 0.5
    assert 15 < np.median(hotter[late]) < 25
    assert warm.generate(1).state[0] == machine.states.index("fault")  # tripped at the end


def test_welding_drift_sags_voltage_and_raises_current() -> None:
    """At the end of a welding drift the voltage is 8 % low and, for the same shaft power,
    the drive draws 1/0.92 of the current."""
    machine = model("production_machine")
    sim = running_machine()
    snapshot = sim.snapshot()
    healthy = sim.generate(360)
    sim.restore(snapshot)
    sim.force_fault("welding_drift", duration_seconds=3600)
    drifting = sim.generate(360)
    end = (drifting.state == machine.states.index("running")) & (np.arange(360) > 340)
    volts = drifting.channels["voltage_v"][end] / healthy.channels["voltage_v"][end]
    assert abs(np.median(volts) - 0.92) < 0.005
    drive = (drifting.channels["current_a"][end] - 3) / (healthy.channels["current_a"][end] - 3)
    assert abs(np.median(drive) - 1 / 0.92) < 0.02


def test_days_since_calibration_restart_at_each_service() -> None:
    """The calibration age grows one a day, holds at 0 through a service and counts again
    from its end, the same however the readings are split into blocks."""
    sim = simulator("production_machine")
    before = sim.generate(DAY_READINGS)
    sim.start_maintenance(3600)
    during_and_after = sim.generate(DAY_READINGS // 2)
    age = np.concatenate(
        [
            before.channels["days_since_calibration"],
            during_and_after.channels["days_since_calibration"],
        ]
    )
    assert abs(age[DAY_READINGS - 1] - 1.0) < 0.001
    service = np.concatenate([before.maintenance, during_and_after.maintenance]) == 1
    assert (
        service[DAY_READINGS : DAY_READINGS + 360].all() and not service[DAY_READINGS + 360 :].any()
    )
    assert (age[service] == 0).all()
    hours_after = (len(age) - 1 - (DAY_READINGS + 359)) * 10 / 86_400
    assert abs(age[-1] - hours_after) < 0.001
    split = simulator("production_machine")
    parts = [split.generate(DAY_READINGS // 3) for _ in range(3)]
    split.start_maintenance(3600)
    parts += [split.generate(n) for n in (7, 1000, DAY_READINGS // 2 - 1007)]
    pieces = np.concatenate([p.channels["days_since_calibration"] for p in parts])
    assert np.array_equal(pieces, age)
