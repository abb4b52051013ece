"""The fan model: on/off with RPM, the fan laws, stall, overspeed and chatter."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

RATED_KW, RATED_RPM, RATED_M3_H = 2.2, 900.0, 12_000.0
DAY_READINGS = 86_400 // 5


def test_power_and_airflow_follow_the_fan_laws() -> None:
    """Airflow grows with speed and power with its cube, in every reading of a day; a
    stopped fan reads exactly 0 (its noise is per state)."""
    block = simulator("fan").generate(DAY_READINGS)
    rpm = block.channels["rpm"]
    assert np.allclose(block.channels["power_kw"], RATED_KW * (rpm / RATED_RPM) ** 3, atol=0.05)
    assert np.allclose(block.channels["airflow_m3_h"], RATED_M3_H * rpm / RATED_RPM, atol=100)
    fan = model("fan")
    on = block.state == fan.states.index("on")
    assert (block.channels["fan_on"] == on).all()
    assert abs(np.median(rpm[on]) - RATED_RPM) < 5
    off = block.state == fan.states.index("off")
    # Off for the last five minutes (60 readings) and more: the rotor has run down.
    stopped = np.convolve(off, np.ones(61), mode="full")[: len(off)] == 61
    assert (rpm[stopped] == 0).all() and (block.channels["airflow_m3_h"][stopped] == 0).all()


def test_a_stall_trips_the_fan_and_its_speed_runs_down() -> None:
    """A stall trips at once (RUL 0, health at the threshold); the rotor stops while the
    command stays on; service an hour later ends it."""
    fan = model("fan")
    sim = simulator("fan")
    warm = sim.generate(DAY_READINGS)
    while warm.state[-1] != fan.states.index("on"):
        warm = sim.generate(60)
    sim.force_fault("stall")
    block = sim.generate(2 * 3600 // 5)
    assert (block.state[:720] == fan.states.index("fault")).all()
    assert (block.rul_seconds[:720] == 0).all() and np.allclose(block.health[:720], 0.2)
    assert (block.channels["rpm"][12:720] < 20).all()  # stopped within a minute
    assert (block.channels["power_kw"][12:720] < 0.05).all()  # meter noise only
    assert (block.channels["fan_on"][:720] == 1).all()
    assert (block.maintenance[720:] == 1).any()


def test_overspeed_raises_speed_and_power_by_the_cube() -> None:
    """Overspeed at severity 0.5 runs the fan 10 % fast and draws 1.1³ ≈ 1.33 × the power."""
    fan = model("fan")
    sim = simulator("fan")
    block = sim.generate(DAY_READINGS)
    sim = simulator("fan")
    sim.force_fault("overspeed", severity=0.5, duration_seconds=86_400)
    fast = sim.generate(DAY_READINGS)
    on = (block.state == fan.states.index("on")) & (fast.state == fan.states.index("on"))
    settled = on & np.roll(on, 6)
    ratio = np.median(fast.channels["rpm"][settled]) / np.median(block.channels["rpm"][settled])
    assert abs(ratio - 1.1) < 0.01
    power = np.median(fast.channels["power_kw"][settled]) / np.median(
        block.channels["power_kw"][settled]
    )
    assert abs(power - 1.1**3) < 0.03


def test_chatter_flaps_the_on_off_signal() -> None:
    """While chatter lasts, about 30 % of readings show the on/off signal flipped."""
    fan = model("fan")
    sim = simulator("fan")
    sim.force_fault("chatter", severity=0.5, duration_seconds=3600)
    block = sim.generate(720)
    expected = (block.state == fan.states.index("on")).astype(float)
    flipped = np.mean(block.channels["fan_on"] != expected)
    assert 0.25 < flipped < 0.35
    after = sim.generate(720)
    assert (after.channels["fan_on"] == (after.state == fan.states.index("on"))).all()


def test_a_month_matches_the_on_off_shares() -> None:
    """Over 30 days the fan is on 70 % of the time, within ±0.06 (about 2.5 standard
    deviations for some 470 exponential dwells of 2 h on and 1 h off)."""
    fan = model("fan")
    block = simulator("fan", seed=11).generate(30 * DAY_READINGS)
    assert abs(np.mean(block.state == fan.states.index("on")) - 0.7) <= 0.06


def test_speed_spikes_carry_the_power_with_the_cube() -> None:
    """While the controller surges, about a fifth of the readings run fast, by 100 rpm ×
    severity, and the power of those readings follows the fan laws."""
    fan = model("fan")
    sim = simulator("fan")
    block = sim.generate(DAY_READINGS)
    while block.state[-1] != fan.states.index("on"):
        block = sim.generate(60)
    snapshot = sim.snapshot()
    steady = sim.generate(120)
    sim.restore(snapshot)
    sim.force_fault("spikes", severity=0.8, duration_seconds=600)
    surging = sim.generate(120)
    both = (steady.state == fan.states.index("on")) & (surging.state == steady.state)
    jump = (surging.channels["rpm"] - steady.channels["rpm"])[both]
    spiked = jump > 40
    assert 0.1 < spiked.mean() < 0.3
    assert abs(np.median(jump[spiked]) - 80) < 5
    rpm = surging.channels["rpm"][both]
    assert np.allclose(
        surging.channels["power_kw"][both], RATED_KW * (rpm / RATED_RPM) ** 3, atol=0.05
    )


def test_imbalance_triples_vibration_over_its_course() -> None:
    """Blade fouling raises vibration linearly to three times its healthy level at the end
    of the course, when the fan trips."""
    fan = model("fan")
    course = 3 * 86_400
    healthy = simulator("fan").generate(3 * DAY_READINGS)
    sim = simulator("fan")
    sim.force_fault("vibration", duration_seconds=course)
    fouled = sim.generate(3 * DAY_READINGS + 1)
    on = (healthy.state == fan.states.index("on")) & (fouled.state[:-1] == healthy.state)
    progress = np.arange(3 * DAY_READINGS) * 5 / course
    late = on & (progress > 0.9)
    ratio = fouled.channels["vibration_mm_s"][:-1][late] / healthy.channels["vibration_mm_s"][late]
    assert abs(np.median(ratio) - (1 + 2 * np.median(progress[late]))) < 0.1
    assert fouled.state[-1] == fan.states.index("fault")
