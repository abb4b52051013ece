"""The injection moulding machine: cooling dominates the cycle, energy per kilogram follows
the phases, and its faults show in temperatures, flow and rejects."""

from __future__ import annotations

import numpy as np
from equipment_helpers import model, simulator

DAY_READINGS = 86_400 // 30
# Phase means (s) and power targets (kW) of the built-in cycle; one 1 kg shot per cycle.
PHASES = {"heating": (10, 110), "injection": (3, 190), "cooling": (25, 45), "ejection": (3, 35)}
CYCLE_S = sum(seconds for seconds, _ in PHASES.values())
SHOT_KG = 1.0


def test_cooling_takes_most_of_the_cycle_and_energy_per_kg_follows_the_phases() -> None:
    """Over a weekday, cooling fills 61 % of busy time (25 of 41 s), and busy energy per
    kilogram is Σ P·t over the cycle (0.70 kWh/kg) within 3 %."""
    moulder = model("injection_molding")
    block = simulator("injection_molding").generate(DAY_READINGS)
    idle = moulder.states.index("idle")
    busy = block.state < idle
    cooling = block.state == moulder.states.index("cooling")
    assert abs(cooling.sum() / busy.sum() - 25 / CYCLE_S) < 0.03
    busy_kwh = block.channels["power_kw"][busy].sum() * 30 / 3600
    parts = busy.sum() * 30 / CYCLE_S
    expected = sum(seconds * kw for seconds, kw in PHASES.values()) / 3600 / SHOT_KG
    assert abs(busy_kwh / (parts * SHOT_KG) - expected) < 0.03 * expected
    produced = block.channels["parts_produced"]
    # A full-rate shift makes 8 of the day's 20 busy hours (early and late at 1, night at 0.5).
    assert abs(produced.max() - 0.4 * parts) < 0.03 * parts


def test_cooling_insufficient_heats_the_mould_and_raises_rejects() -> None:
    """Scaled cooling channels cut coolant flow towards 40 % and heat the mould by up to
    25 K, lagging 10 min; rejects climb above the 1 % baseline; service comes when health
    falls below 0.3, 87.5 % into the course."""
    course = 4 * 3600
    start = 7 * 3600  # in the early shift, when the machine is busy
    clean = simulator("injection_molding")
    clean.generate(start // 30)
    healthy = clean.generate(course // 30)
    sim = simulator("injection_molding")
    sim.generate(start // 30)
    sim.force_fault("cooling_insufficient", duration_seconds=course)
    faulty = sim.generate(course // 30)
    late = slice(400, 415)  # 83-86 % into the course, just before the service
    progress = 407.5 / 480
    flow = (
        faulty.channels["coolant_flow_l_min"][late] / healthy.channels["coolant_flow_l_min"][late]
    )
    assert abs(np.median(flow) - (1 - 0.6 * progress)) < 0.03
    warmer = faulty.channels["mould_temp_c"] - healthy.channels["mould_temp_c"]
    lagged = 25 * (progress - 600 / course)  # a ramp seen through a 10 min lag
    assert abs(np.median(warmer[late]) - lagged) < 1.5
    assert np.median(warmer[:20]) < 2
    rejected = faulty.channels["parts_rejected"][415] / faulty.channels["parts_produced"][415]
    assert rejected > 0.08
    service = int(np.argmax(faulty.maintenance == 1))
    assert service == round(0.875 * course / 30)
