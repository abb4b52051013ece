"""The equipment engine: block-invariant streams, rewinds, commands and ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BUILT_IN_MODELS
from equipment_helpers import MONDAY, model, simulator

from sensorfleet.equipment import EquipmentBlock, EquipmentSimulator, build_catalogue
from sensorfleet.equipment.calendar import Calendar
from sensorfleet.equipment.channels import Channels
from sensorfleet.equipment.segments import Segments
from sensorfleet.equipment.timeline import Timeline

LABELS = (
    "timestamps_us",
    "state",
    "fault",
    "instrument_fault",
    "fault_severity",
    "fault_started_us",
    "health",
    "rul_seconds",
    "maintenance",
)


def assert_same(first: EquipmentBlock, second: EquipmentBlock) -> None:
    assert first.channels.keys() == second.channels.keys()
    for name in first.channels:
        assert np.array_equal(first.channels[name], second.channels[name], equal_nan=True), name
    for label in LABELS:
        assert np.array_equal(getattr(first, label), getattr(second, label), equal_nan=True), label


def tripping_fault(name: str) -> str:
    """The first fault of ``name`` that trips the machine (progressive, or a tripping step);
    its first machine fault when none trips."""
    spec = model(name).spec
    tripping = (f for f, fault in spec.faults.items() if fault.progression != "step" or fault.trips)
    return next(tripping, model(name).machine_faults[0])


def run_in_blocks(name: str, sizes: list[int], force_at: int, count: int) -> EquipmentBlock:
    """Readings in blocks of ``sizes``, forcing a tripping fault before reading ``force_at``."""
    sim = simulator(name, seed=7, rate_multiplier=300.0)
    interval = model(name).interval_seconds
    parts, served = [], 0
    for size in sizes:
        take = min(size, count - served)
        if served < force_at < served + take:
            take = force_at - served
        if served == force_at:
            sim.force_fault(tripping_fault(name), 0.9, duration_seconds=2000 * interval)
        if take <= 0:
            break
        parts.append(sim.generate(take))
        served += take
    return EquipmentBlock.concat(parts)


@pytest.mark.parametrize("name", ["compressor", "motor", "fan", "hvac"])
def test_blocks_are_identical_however_the_readings_are_split(name: str) -> None:
    """One block or hundreds of uneven ones: the same bits, faults, trips and service included."""
    count, force_at = 40_000, 1_000
    whole = run_in_blocks(name, [force_at, count], force_at, count)
    states = model(name).states
    assert (whole.fault >= 0).any() and (whole.instrument_fault >= 0).any()
    assert (whole.state == states.index("fault")).any() and (whole.maintenance == 1).any()
    sizes = np.random.default_rng(3).integers(1, 900, size=count).tolist()
    assert_same(whole, run_in_blocks(name, sizes, force_at, count))


@pytest.mark.parametrize("name", ["compressor", "motor", "fan", "hvac"])
def test_restore_replays_exactly_and_stays_reusable(name: str) -> None:
    """After a snapshot, restoring twice gives the same readings both times."""
    sim = simulator(name, rate_multiplier=300.0)
    sim.generate(5000)
    sim.force_fault(model(name).instrument_faults[-1], duration_seconds=3000)
    sim.generate(10)
    snap = sim.snapshot()
    first = sim.generate(3000)
    sim.restore(snap)
    second = sim.generate(3000)
    sim.restore(snap)
    third = sim.generate(3000)
    assert_same(first, second)
    assert_same(first, third)


def test_a_command_after_a_rewind_matches_a_command_without_one() -> None:
    """Forcing a fault after rewinding to a snapshot equals forcing it with no look-ahead."""
    straight = simulator("fan")
    straight.generate(700)
    straight.force_fault("overspeed", severity=0.6, duration_seconds=900)
    expected = straight.generate(1000)

    ahead = simulator("fan")
    ahead.generate(500)
    snap = ahead.snapshot()
    ahead.generate(800)  # read ahead, then a command arrives after reading 700 was served
    ahead.restore(snap)
    ahead.generate(200)
    ahead.force_fault("overspeed", severity=0.6, duration_seconds=900)
    assert_same(expected, ahead.generate(1000))


def test_forced_fault_starts_at_the_next_reading_and_ends_on_request() -> None:
    """force_fault labels the very next reading; end_fault clears it from the reading after."""
    motor = model("motor")
    sim = simulator("motor")
    before = sim.generate(50)
    sim.force_fault("overload", severity=0.8, duration_seconds=None)
    during = sim.generate(30)
    assert (before.fault == -1).all()
    assert (during.fault == motor.faults.index("overload")).all()
    assert during.fault_started_us[0] == during.timestamps_us[0]
    assert np.allclose(during.fault_severity, 0.8)
    assert sim.end_fault() == ("overload",)
    after = sim.generate(30)
    assert (after.fault == -1).all() and (after.health == 1).all()
    assert sim.end_fault() == ()


def test_timestamps_follow_the_interval_from_the_start() -> None:
    """Readings are exactly one interval apart, the first at the start time; none is empty."""
    sim = simulator("hvac")
    empty = sim.generate(0)
    assert len(empty) == 0 and set(empty.channels) == {c.name for c in model("hvac").channels}
    block = sim.generate(100)
    assert block.timestamps_us[0] == round(MONDAY * 1_000_000)
    assert (np.diff(block.timestamps_us) == 10_000_000).all()
    assert len(sim.generate(0)) == 0 and sim.generate(1).first_index == 100


def test_instrument_dropout_is_missing_data_not_a_machine_fault() -> None:
    """A dropout leaves NaN in its own channel only, labelled apart from machine faults."""
    compressor = model("compressor")
    sim = simulator("compressor")
    sim.generate(10)
    sim.force_fault("power_meter_dropout", severity=1.0, duration_seconds=120)
    block = sim.generate(300)
    missing = np.isnan(block.channels["power_kw"])
    assert missing[:120].all() and not missing[120:].any()
    assert not any(np.isnan(v).any() for k, v in block.channels.items() if k != "power_kw")
    assert (block.fault == -1).all()
    assert (block.instrument_fault[:120] == compressor.faults.index("power_meter_dropout")).all()
    assert (block.instrument_fault[120:] == -1).all()
    # The energy counter reads the true power, so it keeps counting through the dropout.
    assert np.all(np.diff(block.channels["energy_kwh"]) >= 0)


def test_stuck_and_drifting_instruments() -> None:
    """A stuck sensor repeats its first value; a drifting one departs linearly from the truth."""
    sim = simulator("compressor")
    sim.generate(10)
    sim.force_fault("flow_sensor_stuck", duration_seconds=600)
    stuck = sim.generate(600).channels["flow_m3_min"]
    assert (stuck == stuck[0]).all()
    drift = model("compressor").spec.instrument_faults["pressure_sensor_drift"]
    clean = simulator("compressor").generate(10 + 7200).channels["pressure_bar"][10:]
    sim = simulator("compressor")
    sim.generate(10)
    sim.force_fault("pressure_sensor_drift", severity=1.0, duration_seconds=7200)
    drifted = sim.generate(7200).channels["pressure_bar"]
    hours = np.arange(7200) / 3600
    assert np.allclose(drifted - clean, drift.amount * hours, atol=0.011)


def test_adding_a_channel_leaves_the_other_channels_unchanged() -> None:
    """Each channel draws from its own named stream: a new channel shifts no other value."""
    extended = build_catalogue(
        [
            (
                "extra.yaml",
                "models: {compressor: {channels: {oil_c: {kind: analog, target: 60, noise: 1}}}}",
            )
        ]
    ).get("compressor")
    plain = simulator("compressor", rate_multiplier=100.0).generate(20_000)
    wider = EquipmentSimulator(
        extended, np.random.SeedSequence(42), MONDAY, 1.0, rate_multiplier=100.0
    ).generate(20_000)
    for name, values in plain.channels.items():
        assert np.array_equal(values, wider.channels[name], equal_nan=True), name
    assert "oil_c" in wider.channels


def test_seeds_differ_and_unknown_fault_is_refused() -> None:
    """Another seed is another stream; forcing a fault the model lacks names its faults."""
    one = simulator("fan", seed=1).generate(500).channels["rpm"]
    two = simulator("fan", seed=2).generate(500).channels["rpm"]
    assert not np.array_equal(one, two)
    with pytest.raises(ValueError, match="fan has no fault 'leak'"):
        simulator("fan").force_fault("leak")


def test_reconfigure_changes_figures_from_the_next_reading() -> None:
    """A reloaded model's new target applies from the next reading; the past is untouched."""
    compressor = model("compressor")
    bigger = build_catalogue(
        [("plant.yaml", "models: {compressor: {channels: {power_kw: {target: {loaded: 75}}}}}")]
    ).get("compressor")
    plain = simulator("compressor").generate(2000)
    sim = simulator("compressor")
    before = sim.generate(1000)
    sim.reconfigure(bigger)
    after = sim.generate(1000)
    assert_same(before, plain.slice(0, 1000))
    loaded = after.state == compressor.states.index("loaded")
    settled = loaded & np.roll(loaded, 10)
    assert abs(float(np.median(after.channels["power_kw"][settled])) - 75) < 1
    # The state machine kept its place: the first readings after the change share its state.
    assert after.state[0] == plain.state[1000]


def test_reconfigure_rescales_fault_rates_and_refuses_another_machine() -> None:
    """Raising the profile multiplier makes faults appear; other channels mean another machine."""
    sim = simulator("motor", rate_multiplier=0.0)
    assert (sim.generate(20_000).fault == -1).all()
    sim.reconfigure(model("motor"), rate_multiplier=2000.0)
    assert (sim.generate(20_000).fault >= 0).any()
    other = build_catalogue(
        [("plant.yaml", "models: {motor: {channels: {oil_c: {kind: analog, target: 40}}}}")]
    ).get("motor")
    with pytest.raises(ValueError, match="start a new simulator"):
        sim.reconfigure(other)


def test_machine_faults_can_freeze_a_channel_or_lose_its_readings() -> None:
    """A stuck effect repeats the episode's first value; a dropout in bursts loses readings
    that other channels still compute from."""
    catalogue = build_catalogue(
        [
            (
                "plant.yaml",
                "models: {motor: {faults: {board_fault: {progression: step,"
                " effects: {vibration_mm_s: {mode: stuck}, power_kw: {mode: dropout,"
                " bursts: 0.5}}}}}}",
            )
        ]
    )
    motor = catalogue.get("motor")
    sim = EquipmentSimulator(motor, np.random.SeedSequence(42), MONDAY, 10.0, 0.0)
    sim.generate(20)
    sim.force_fault("board_fault", severity=0.5, duration_seconds=3600)
    block = sim.generate(360)
    stuck = block.channels["vibration_mm_s"]
    assert (stuck == stuck[0]).all()
    lost = np.isnan(block.channels["power_kw"])
    assert 0.4 < lost.mean() < 0.6
    assert not np.isnan(block.channels["energy_kwh"]).any()
    assert np.all(np.diff(block.channels["energy_kwh"]) >= 0)
    after = sim.generate(360)
    assert not np.isnan(after.channels["power_kw"]).any()
    assert len(np.unique(after.channels["vibration_mm_s"])) > 10


def test_a_formula_that_divides_by_zero_gives_no_reading_and_no_lasting_nan() -> None:
    """1/0 in a derived channel is a missing reading; a NaN counter rate adds nothing."""
    text = (
        "models: {fan: {channels: {"
        "per_rpm: {kind: derived, formula: '1000 / rpm'},"
        " odd_count: {kind: counter, rate: 'sqrt(rpm - 100) / 10'}}}}"
    )
    fan = build_catalogue([("plant.yaml", text)]).get("fan")
    block = EquipmentSimulator(fan, np.random.SeedSequence(3), MONDAY, 5.0, 0.0).generate(17_280)
    rpm, per_rpm = block.channels["rpm"], block.channels["per_rpm"]
    missing = np.isnan(per_rpm)
    assert missing.any() and (rpm[missing] == 0).all()  # stopped exactly: no reading
    assert not missing[rpm > 1].any()
    counts = block.channels["odd_count"]
    assert not np.isnan(counts).any() and counts[-1] > 0


def run_keeping_segments(name: str, sizes: list[int], force_at: int, count: int) -> tuple:
    """``run_in_blocks``'s readings, every segment of the run (none dropped) as values,
    and the channel values each block carried to the next."""
    sims: list[EquipmentSimulator] = []
    carried: list[list[float]] = []
    original = EquipmentSimulator.__init__
    original_starts = Channels._segment_starts

    def keep(self: EquipmentSimulator, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        sims.append(self)

    def starts(self: Channels, segments: Segments, *args: object) -> object:
        found = original_starts(self, segments, *args)  # type: ignore[arg-type]
        assert segments.carried is not None
        carried.append(segments.carried[1].values.tolist())
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EquipmentSimulator, "__init__", keep)
        patch.setattr(Channels, "_segment_starts", starts)
        patch.setattr(Timeline, "drop_before", lambda self, instant: None)
        block = run_in_blocks(name, sizes, force_at, count)
    # NaN demands compare equal as text.
    segments = [repr(row) for row in sims[0].timeline.segments.rows()]
    return block, segments, carried


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_runs_of_states_in_bulk_match_the_event_by_event_loop(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking plain state changes many at a time gives the loop's segments, to the last
    bit of every time and channel start value, and so its readings: random faults, a
    forced fault, trips, service and instrument faults included."""
    count, force_at = 20_000, 3_000
    sizes = np.random.default_rng(5).integers(1, 4_000, size=count).tolist()
    bulk, bulk_segments, bulk_starts = run_keeping_segments(name, sizes, force_at, count)
    monkeypatch.setattr(Timeline, "_run_of_states", lambda self, until: False)
    loop, loop_segments, loop_starts = run_keeping_segments(name, sizes, force_at, count)
    assert_same(bulk, loop)
    assert len(bulk_segments) == len(loop_segments) > 10
    assert bulk_segments == loop_segments
    assert bulk_starts == loop_starts


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_production_of_many_instants_is_the_one_of_each(name: str) -> None:
    """The vectorised production factor equals the scalar one at every instant, across
    shift changes, midnights and weekends, in any time zone."""
    spec = model(name).spec
    instants = MONDAY + np.random.default_rng(9).uniform(-3 * 86_400, 10 * 86_400, 50_000)
    instants = np.concatenate([instants, MONDAY + 60.0 * np.arange(-1440, 8 * 1440)])
    for offset in (0.0, 5.5, -8.0):
        calendar = Calendar(spec.schedule, spec.climate, offset)
        expected = [calendar.production_at(instant) for instant in instants.tolist()]
        assert calendar.production_many(instants).tolist() == expected


def step_by_step_starts(sim: EquipmentSimulator) -> np.ndarray:
    """Every segment's start values by the formula, one segment after the other, from the
    targets of the first state: x ↦ L + (x − L)·e^(−span/τ)."""
    channels, columns = sim.channels, sim.timeline.segments.columns()
    value = channels.targets[int(columns.state[0])].tolist()
    rows = [value]
    spans = (columns.end - columns.start).tolist()
    for span, state in zip(spans[:-1], columns.state[:-1].tolist(), strict=True):
        levels, rates = channels.targets[state].tolist(), channels.rates[state].tolist()
        value = [
            level + (x - level) * (math.exp(-span * rate) if span > 0 else 1.0)
            for x, level, rate in zip(value, levels, rates, strict=True)
        ]
        rows.append(value)
    return np.array(rows)


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_segment_start_values_are_the_step_by_step_formula(name: str) -> None:
    """Composed a window of segments at a time, in blocks of any size, every segment's
    start value is the first-order response carried from segment to segment, to within
    rounding (the composition adds in another order than the step-by-step loop). Channels
    with τ = 0 throughout have no start values to carry: they sit on their targets."""
    found: dict[int, np.ndarray] = {}
    original = Channels._segment_starts

    def keep(self: Channels, segments: Segments, columns: object, which: np.ndarray) -> np.ndarray:
        starts = original(self, segments, columns, which)  # type: ignore[arg-type]
        for index, values in zip(which.tolist(), starts, strict=True):
            found[segments.ordinal(index)] = values
        return starts

    sim = simulator(name, seed=11, rate_multiplier=300.0)
    sizes = np.random.default_rng(2).integers(1, 3_000, size=40).tolist()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Channels, "_segment_starts", keep)
        patch.setattr(Timeline, "drop_before", lambda self, instant: None)
        for size in sizes:
            sim.generate(size)
    keep = sim.channels.remembering
    if not len(keep):
        return
    expected = step_by_step_starts(sim)[:, keep]
    ordinals = sorted(found)
    assert len(ordinals) > 20
    got = np.array([found[o] for o in ordinals])
    scale = np.maximum(np.abs(expected[ordinals]), 1.0)
    assert np.all(np.abs(got - expected[ordinals]) <= 1e-9 * scale)
