"""The particulate matter sensor: counts follow mass, spikes add 50-150 µg/m³, and a dust
storm is coarse."""

from __future__ import annotations

import numpy as np
from equipment_helpers import simulator

DAY_READINGS = 2880


def test_counts_and_pm10_follow_pm2_5() -> None:
    """Particle counts are 150 per µg/m³ of PM2.5 and PM10 is 1.6 × PM2.5, within noise;
    PM2.5 peaks around midday and the battery drains by 1/365 a day."""
    block = simulator("pm_sensor").generate(DAY_READINGS)
    pm25 = block.channels["pm2_5_ug_m3"]
    # The derived channels read the unrounded PM2.5; the reported one is rounded to 1 µg/m³.
    counts = block.channels["particles_0_3um"] - 150 * pm25
    assert abs(np.mean(counts)) < 10 and np.std(counts) < 60
    coarse = block.channels["pm10_ug_m3"] - 1.6 * pm25
    assert abs(np.mean(coarse)) < 0.5 and np.std(coarse) < 2.5
    hours = np.arange(DAY_READINGS) * 30 / 3600
    assert (
        np.mean(pm25[(hours > 11) & (hours < 15)]) > np.mean(pm25[(hours > 23) | (hours < 3)]) + 6
    )
    assert abs(block.channels["battery_pct"][-1] - (100 - 100 / 365.25)) < 0.1


def test_pollution_spike_and_dust_storm() -> None:
    """A pollution spike adds 150 µg/m³ × severity (0.333-1: 50-150) after its 2 min lag;
    a dust storm raises PM10 four times as much as PM2.5, so the ratio climbs above 1.6."""
    calm = simulator("pm_sensor").generate(120)
    sim = simulator("pm_sensor")
    sim.force_fault("pollution_spike", severity=0.5, duration_seconds=3600)
    spike = sim.generate(120)
    extra = spike.channels["pm2_5_ug_m3"] - calm.channels["pm2_5_ug_m3"]
    assert abs(np.median(extra[40:]) - 75) < 3
    sim = simulator("pm_sensor")
    sim.force_fault("dust_storm", severity=1.0, duration_seconds=6 * 3600)
    storm = sim.generate(720)
    late = slice(480, 720)
    ratio = np.median(storm.channels["pm10_ug_m3"][late] / storm.channels["pm2_5_ug_m3"][late])
    assert ratio > 3
    assert np.median(storm.channels["particles_0_3um"][late]) > 20_000
