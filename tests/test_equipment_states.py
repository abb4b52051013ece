"""Operating states: phased cycles follow the schedule, load/unload saturates, terms peak."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from equipment_helpers import MONDAY, simulator

from sensorfleet.equipment import (
    EquipmentBlock,
    EquipmentModel,
    EquipmentSimulator,
    build_catalogue,
    load_catalogue,
)

PRESS = """
models:
  press:
    interval_seconds: 1
    schedule:
      shifts:
        - {name: day, start_hour: 6, end_hour: 18, factor: 0.8}
        - {name: evening, start_hour: 18, end_hour: 22, factor: 0.25}
      weekend_factor: 0.5
    operation:
      cycle:
        phases:
          - {state: build, seconds: [20, 30]}
          - {state: hold, seconds: [10, 10]}
          - {state: release, seconds: [5, 8]}
        pause_state: idle
    channels:
      pressure_bar:
        kind: analog
        target: {default: 0, build: 180, hold: 200, release: 20}
        tau_seconds: 3
      hall_temp_c:
        kind: analog
        target: 20
        daily: {amplitude: 2.0, peak: 15}
        weekly: {amplitude: 1.0, peak: 2}
"""


def run(
    text: str, name: str, seconds: int, start: float = MONDAY
) -> tuple[EquipmentModel, EquipmentBlock]:
    model = build_catalogue([("plant.yaml", text)]).get(name)
    sim = EquipmentSimulator(model, np.random.SeedSequence(5), start, 1.0, 0.0)
    return model, sim.generate(seconds)


def test_a_cycle_runs_its_phases_in_order_and_pauses_to_the_schedule() -> None:
    """Phases never skip or reorder; busy time per hour is the shift's factor; closed is idle."""
    model, block = run(PRESS, "press", 2 * 86_400)
    states = model.states
    codes = block.state
    runs = codes[np.flatnonzero(np.diff(codes)) + 1]
    names = [states[c] for c in runs]
    following = {
        "build": {"hold"},
        "hold": {"release"},
        "release": {"build", "idle"},
        "idle": {"build"},
    }
    for current, after in pairwise(names):
        assert after in following[current], (current, after)
    hour = (np.arange(len(codes)) % 86_400) / 3600
    busy = codes != states.index("idle")
    for lo, hi, factor in ((7, 17, 0.8), (18.5, 21.5, 0.25)):
        window = (hour >= lo) & (hour < hi)
        assert abs(busy[window].mean() - factor) < 0.03, (lo, factor, busy[window].mean())
    closed = (hour >= 22.5) | (hour < 5.5)
    assert busy[closed].mean() < 0.01


def test_daily_and_weekly_terms_peak_where_declared() -> None:
    """The daily cosine peaks at its hour and the weekly one on its day, to the reading."""
    _, block = run(PRESS, "press", 86_400)
    hall = block.channels["hall_temp_c"]
    hours = np.arange(len(hall)) / 3600  # Monday, from midnight UTC
    expected = (
        20
        + 2.0 * np.cos(2 * np.pi * (hours - 15) / 24)
        + 1.0 * np.cos(2 * np.pi * (hours / 24 - 2) / 7)  # peaks on Wednesday
    )
    assert np.allclose(hall, expected, atol=0.006)  # rounded to 0.01
    assert abs(hours[np.argmax(hall)] - 15) < 0.5


def test_demand_beyond_capacity_keeps_the_compressor_loaded() -> None:
    """When the plant asks for more air than the machine makes, it never unloads."""
    text = "models: {compressor: {operation: {demand: {demand_m3_min: 12.0, variation: 0}}}}"
    model, block = run(text, "compressor", 6 * 3600, start=MONDAY + 7 * 3600)
    assert (block.state == model.states.index("loaded")).all()
    assert abs(float(np.median(block.channels["power_kw"])) - 55) < 1


def test_events_stay_fewer_than_readings_whatever_the_figures() -> None:
    """A tiny receiver cycles no faster than once a second, and profiles multiplying fault
    rates absurdly give at most one onset a second: a minute is a bounded number of events."""
    text = "models: {compressor: {operation: {demand: {storage_m3: 0.0001}}}}"
    tiny = build_catalogue([("plant.yaml", text)]).get("compressor")
    sim = EquipmentSimulator(tiny, np.random.SeedSequence(1), MONDAY + 7 * 3600, 1.0, 0.0)
    sim.timeline.extend(60.0)
    assert 60 <= len(sim.timeline.segments) <= 61  # one load or unload phase a second
    block = sim.generate(600)
    assert 0.3 < float(np.mean(block.state == tiny.states.index("loaded"))) < 0.7

    compressor = build_catalogue().get("compressor")
    stormy = EquipmentSimulator(compressor, np.random.SeedSequence(1), MONDAY, 1.0, 1e12)
    stormy.timeline.extend(60.0)
    assert len(stormy.timeline.segments) <= 4 * 60  # onsets, their ends, services, states
    assert (stormy.generate(60).fault >= 0).any()


def _decisions_one_by_one(
    name: str, start: float, count: int
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """``count`` decisions of a fresh simulator of ``name`` taken with ``next``, and the
    plan of as many from the same point; each as (state, seconds) pairs."""
    planned = simulator(name, seed=11, start=start).timeline
    plan = planned.operator.plan(planned.streams["states"], planned.now, planned.state, count)
    single = simulator(name, seed=11, start=start).timeline
    now, state, steps = single.now, single.state, []
    for _ in range(count):
        step = single.operator.next(single.streams["states"], now, state, False)
        steps.append((step.state, step.seconds))
        now, state = now + step.seconds, step.state
    return list(zip(plan.states, plan.seconds.tolist(), strict=True)), steps


def test_a_plan_is_the_decisions_next_takes_one_by_one() -> None:
    """A dwell model's plan has ``next``'s states and dwell times bit for bit (math.log1p,
    not numpy's, which differs in the last bit for some draws); a cycle's and a
    compressor's have them up to the first decision that reads another production factor
    than the plan's."""
    for name in load_catalogue().names():
        spec = load_catalogue().get(name).spec
        count = 3_000
        planned, single = _decisions_one_by_one(name, MONDAY + 7 * 3600, count)
        if spec.operation.states is not None:
            assert planned == single, name
        else:  # a cycle's or a compressor's decisions hold while the factor does
            assert planned[:20] == single[:20], name
