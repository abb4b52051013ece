"""The compressor model: load/unload by demand, and a leak's cost in duty and energy."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

DAY = 86_400


def test_leak_raises_duty_and_energy_by_the_formula() -> None:
    """Same seed, same day: a leak adds (L/C)·(P_load − P_unload)·hours of energy, within 10 %."""
    compressor = model("compressor")
    demand = compressor.spec.operation.demand
    assert demand is not None
    leak_m3_min = compressor.spec.faults["leak"].effects["demand"].to
    loaded_kw = 55.0  # the catalogue's loaded and unloaded power targets
    unloaded_kw = 12.0
    tight = simulator("compressor").generate(DAY)
    leaky_sim = simulator("compressor")
    leaky_sim.force_fault("leak", severity=1.0)
    leaky = leaky_sim.generate(DAY)
    loaded = compressor.states.index("loaded")

    extra_kwh = leaky.channels["energy_kwh"][-1] - tight.channels["energy_kwh"][-1]
    expected_kwh = leak_m3_min / demand.capacity_m3_min * (loaded_kw - unloaded_kw) * 24
    assert abs(extra_kwh - expected_kwh) <= 0.10 * expected_kwh, (extra_kwh, expected_kwh)

    for block, leak in ((tight, 0.0), (leaky, leak_m3_min)):
        duty = float(np.mean(block.state == loaded))
        mean_demand = float(np.mean(block.channels["demand_m3_min"])) - leak
        # duty = (demand + leak) / capacity; average power = duty·P_load + (1 − duty)·P_unload
        assert abs(duty - (mean_demand + leak) / demand.capacity_m3_min) < 0.02
        average_kw = float(np.mean(block.channels["power_kw"]))
        assert abs(average_kw - (duty * loaded_kw + (1 - duty) * unloaded_kw)) < 0.01 * average_kw


def test_unloaded_power_is_15_to_25_percent_of_loaded() -> None:
    """Settled unloaded power is 15–25 % of settled loaded power, as load/unload machines draw."""
    compressor = model("compressor")
    block = simulator("compressor").generate(6 * 3600)
    power = block.channels["power_kw"]
    change = np.flatnonzero(np.diff(block.state)) + 1
    settled = np.ones(len(power), dtype=bool)
    for offset in range(8):  # skip the few seconds the motor takes to follow
        settled[np.minimum(change + offset, len(power) - 1)] = False
    loaded = power[settled & (block.state == compressor.states.index("loaded"))].mean()
    unloaded = power[settled & (block.state == compressor.states.index("unloaded"))].mean()
    assert 0.15 <= unloaded / loaded <= 0.25


def test_pressure_saws_between_cut_in_and_cut_out() -> None:
    """Pressure rises while loaded and falls while unloaded, within the 6.5–7.5 bar band."""
    compressor = model("compressor")
    block = simulator("compressor").generate(3600)
    pressure = block.channels["pressure_bar"]
    assert pressure.min() > 6.4 and pressure.max() < 7.6
    step = np.diff(pressure)
    same = block.state[1:] == block.state[:-1]
    loaded = compressor.states.index("loaded")
    assert np.mean(step[same & (block.state[1:] == loaded)]) > 0
    assert np.mean(step[same & (block.state[1:] != loaded)]) < 0


def test_leak_ground_truth_and_maintenance_restores_health() -> None:
    """A leak is labelled with its name, onset and severity, never trips; maintenance ends it."""
    compressor = model("compressor")
    sim = simulator("compressor")
    sim.generate(100)
    sim.force_fault("leak", severity=0.5)
    leaking = sim.generate(600)
    leak = compressor.faults.index("leak")
    assert (leaking.fault == leak).all()
    assert (leaking.fault_started_us == leaking.timestamps_us[0]).all()
    assert np.allclose(leaking.fault_severity, 0.5)
    assert np.isnan(leaking.rul_seconds).all()  # a step fault never reaches the threshold
    assert ((leaking.health < 1) & (leaking.health > compressor.spec.failure_threshold)).all()
    sim.start_maintenance(1800)
    serviced = sim.generate(1800)
    assert (serviced.maintenance == 1).all()
    assert (serviced.state == compressor.states.index("maintenance")).all()
    assert (serviced.channels["power_kw"][60:] < 2.5).all()  # stopped for service (noise only)
    after = sim.generate(600)
    assert (after.maintenance == 0).all()
    assert (after.fault == -1).all() and (after.health == 1).all()
    assert np.isnan(after.rul_seconds).all() and (after.fault_started_us == -1).all()


def test_current_follows_power_through_load_changes() -> None:
    """Power factor rises with load, so current has no spikes when the compressor unloads."""
    compressor = model("compressor")
    block = simulator("compressor").generate(6 * 3600)
    current, power = block.channels["current_a"], block.channels["power_kw"]
    loaded = block.state == compressor.states.index("loaded")
    full_load = float(np.median(current[loaded & (power > 50)]))
    assert current.max() < 1.1 * full_load
    assert np.all(np.diff(current[power > 1]) / full_load < 0.5)  # no jumps between readings
