"""The motor model: bearing wear through the ISO 10816-3 zones, and a month of shifts."""

from __future__ import annotations

import math

import numpy as np
from equipment_helpers import model, simulator

from sensorfleet.equipment import EquipmentBlock

READINGS_PER_HOUR = 360  # one reading every 10 s
WEEK = 7 * 86_400
# ISO 10816-3, group 2 (15-300 kW) on a flexible foundation: zone boundaries in mm/s RMS.
ZONE_AB, ZONE_BC, ZONE_CD = 2.3, 4.5, 7.1


def worn(seconds: float = WEEK) -> tuple[EquipmentBlock, EquipmentBlock, int]:
    """A motor that starts bearing wear after an hour, its healthy twin, and the onset index."""
    healthy = simulator("motor").generate(READINGS_PER_HOUR + 8 * 8640)
    sim = simulator("motor")
    first = sim.generate(READINGS_PER_HOUR)
    sim.force_fault("bearing_wear", severity=1.0, duration_seconds=seconds)
    rest = sim.generate(8 * 8640)
    return EquipmentBlock.concat([first, rest]), healthy, READINGS_PER_HOUR


def test_bearing_wear_crosses_the_zones_in_order_and_trips_at_zone_d() -> None:
    """Vibration grows from 2 mm/s through A/B, B/C to C/D, where the motor trips with RUL 0."""
    motor = model("motor")
    block, _, onset = worn()
    running = block.state == motor.states.index("running")
    vibration = np.where(running, block.channels["vibration_mm_s"], np.nan)
    trip = int(np.argmax(block.state == motor.states.index("fault")))
    assert trip == onset + WEEK // 10  # the course ends a week after onset
    # Half-hour means of the running readings, to see through the noise.
    window = 180
    sums = np.nancumsum(np.concatenate(([0.0], vibration)))
    counts = np.cumsum(np.concatenate(([0], running)))
    lows = np.arange(onset, trip - window + 1, 30)
    with np.errstate(invalid="ignore"):
        means = (sums[lows + window] - sums[lows]) / (counts[lows + window] - counts[lows])
    hours = (np.arange(len(means)) * 30 + window / 2) / READINGS_PER_HOUR
    assert 1.9 < means[0] < 2.2
    crossed = [hours[np.argmax(means > zone)] for zone in (ZONE_AB, ZONE_BC)]
    assert crossed[0] < crossed[1] < trip / READINGS_PER_HOUR
    # Exponential growth: 2 mm/s · 3.55^(τ/T) reaches 2.3 after 11 % and 4.5 after 64 % of T.
    for zone, hour in zip((ZONE_AB, ZONE_BC), crossed, strict=True):
        assert abs(hour - 168 * math.log(zone / 2.0) / math.log(3.55)) < 3.0
    at_trip = np.nanmean(vibration[trip - 30 : trip])
    assert abs(at_trip - ZONE_CD) < 0.25
    # Ground truth: RUL counts down to 0 at the trip, health falls to the threshold.
    rul = block.rul_seconds
    assert np.isnan(rul[:onset]).all()
    assert rul[onset] == WEEK and rul[trip - 1] == 10.0 and rul[trip] == 0.0
    assert np.all(np.diff(rul[onset:trip]) == -10.0)
    assert block.health[onset] == 1.0
    assert np.all(np.diff(block.health[onset:trip]) <= 0)
    assert math.isclose(block.health[trip], motor.spec.failure_threshold)
    assert math.isclose(block.fault_severity[trip - 1], 1.0, rel_tol=1e-4)


def test_bearing_temperature_follows_vibration_with_a_lag() -> None:
    """The bearing warms by the fault's 25 °C, but later than vibration grows (a 2 h lag)."""
    block, healthy, onset = worn()
    trip = onset + WEEK // 10
    span = slice(onset, trip)
    with np.errstate(invalid="ignore", divide="ignore"):
        vibration_ratio = (
            block.channels["vibration_mm_s"][span] / healthy.channels["vibration_mm_s"][span]
        )
    warming = block.channels["bearing_temp_c"][span] - healthy.channels["bearing_temp_c"][span]
    tau = np.arange(trip - onset) * 10.0
    expected_ratio = np.exp(math.log(3.55) * tau / WEEK)
    valid = healthy.channels["vibration_mm_s"][span] > 1.5  # running, where rounding is small
    assert np.allclose(vibration_ratio[valid], expected_ratio[valid], rtol=0.01)
    vibration_share = (expected_ratio - 1) / 2.55
    assert np.all(warming / 25.0 <= vibration_share + 0.005)
    assert 20.0 < warming[-1] <= 25.0


def test_maintenance_after_the_trip_restores_health() -> None:
    """Four hours after the trip, maintenance starts; when it ends the fault is gone, health 1."""
    motor = model("motor")
    block, _, onset = worn()
    trip = onset + WEEK // 10
    serviced = np.flatnonzero(block.maintenance)
    assert serviced[0] == trip + 4 * READINGS_PER_HOUR
    done = serviced[-1] + 1
    assert done < len(block)
    assert (block.fault[:done] >= 0)[onset:].all()
    assert (block.fault[done:] == -1).all() and (block.health[done:] == 1.0).all()
    assert (block.state[done:] != motor.states.index("fault")).all()


def test_a_month_matches_state_shares_and_shift_production_factors() -> None:
    """Over 30 days: state shares within ±0.03 (setup ±0.01), each shift's performance equal
    to its production factor within 0.01, and OEE = availability × performance × quality."""
    motor = model("motor")
    block = simulator("motor", seed=3).generate(30 * 8640)
    shares = np.bincount(block.state, minlength=len(motor.states)) / len(block)
    wanted = {"running": (0.88, 0.03), "idle": (0.10, 0.03), "setup": (0.02, 0.01)}
    for state, (share, tolerance) in wanted.items():
        assert abs(shares[motor.states.index(state)] - share) <= tolerance, (state, shares)

    seconds = (block.timestamps_us - block.timestamps_us[0]) / 1e6
    hour = (seconds % 86_400) / 3600
    weekend = (seconds // 86_400) % 7 >= 5  # the run starts on a Monday
    factors = np.where(hour >= 22, 0.5, np.where(hour >= 6, 1.0, 0.5))
    factors = np.where(weekend, factors * 0.3, factors)
    shift_ends = np.flatnonzero(np.diff(block.channels["planned_seconds"]) < 0)
    assert len(shift_ends) == 30 * 3  # 06:00, 14:00 and 22:00 every day
    checked = 0
    for start, end in zip(shift_ends[:-1] + 1, shift_ends[1:], strict=True):
        shift_factors = factors[start : end + 1]
        if shift_factors.min() != shift_factors.max():
            continue  # a night shift running into or out of a weekend
        if block.channels["run_seconds"][end] < 3600:
            continue  # too little running for a meaningful rate
        performance = block.channels["performance"][end]
        assert abs(performance - shift_factors[0]) <= 0.01, (end, shift_factors[0])
        checked += 1
    assert checked >= 80
    channels = block.channels
    oee = channels["availability"] * channels["performance"] * channels["quality"]
    assert np.allclose(channels["oee"], oee, atol=2e-4)
    assert abs(float(np.mean(channels["availability"][shift_ends])) - 0.88) < 0.05
