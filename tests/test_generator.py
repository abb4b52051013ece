"""The reading stream: determinism, calibrated anomaly rates, daily cycle, location effects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sensorfleet.node.anomalies import calibrate
from sensorfleet.node.config import Config, build_config
from sensorfleet.node.generator import SensorGenerator, Settings
from sensorfleet.node.identity import DEFAULT_IDENTITY, Identity, build_identity
from sensorfleet.node.readings import KIND_CODES, KIND_NAMES

START = 1_700_000_000.0  # a Tuesday, 22:13:20 UTC


def identity(**fields: Any) -> Identity:
    return build_identity({**DEFAULT_IDENTITY, **fields}, "test", {})


def generator(
    config: Config | None = None, seed: int = 1, start: float = START, **fields: Any
) -> SensorGenerator:
    settings = Settings.resolve(config or build_config({}, "test"), identity(**fields))
    return SensorGenerator(settings, seed, start)


def kinds_of(gen: SensorGenerator, count: int, block: int = 200_000) -> np.ndarray:
    parts = []
    while count > 0:
        parts.append(gen.generate(min(block, count)).kinds)
        count -= block
    return np.concatenate(parts)


def test_block_size_does_not_change_the_stream() -> None:
    """10,000 readings in one block equal the same readings made 37 at a time."""
    whole = generator(seed=5).generate(10_000)
    pieces = generator(seed=5)
    parts = [pieces.generate(37) for _ in range(271)]
    values = np.concatenate([p.values for p in parts])[:10_000]
    kinds = np.concatenate([p.kinds for p in parts])[:10_000]
    assert np.array_equal(whole.values, values, equal_nan=True)
    assert np.array_equal(whole.kinds, kinds)
    assert whole.kinds.any()


def test_same_seed_same_rows_other_sensor_other_rows() -> None:
    """Same seed and identity repeat exactly; another sensor id gets its own stream."""
    first = generator(seed=9).generate(2000).rows()
    again = generator(seed=9).generate(2000).rows()
    other = generator(seed=9, id="SENSOR_002").generate(2000).rows()
    assert first == again
    assert [r[2:5] for r in first] != [r[2:5] for r in other]


def test_timestamps_are_exactly_one_period_apart() -> None:
    """At 4 readings/s, consecutive timestamps are 250 ms apart with no drift."""
    config = build_config({"simulation": {"readings_per_second": 4}}, "test")
    block = generator(config).generate(100_000)
    assert set(np.diff(block.times_us).tolist()) == {250_000}
    assert block.rows()[0][0] == "2023-11-14T22:13:20.000000Z"


@pytest.mark.parametrize(("firmware", "expected"), [("1.3", 0.075), ("1.4", 0.035)])
def test_long_run_anomaly_share_matches_probability_times_firmware(
    firmware: str, expected: float
) -> None:
    """probability 0.05 gives ≈7.5 % flagged readings on firmware 1.3 and ≈3.5 % on 1.4."""
    kinds = kinds_of(generator(firmware_version=firmware, seed=3), 6_000_000)
    share = float((kinds > 0).mean())
    assert share == pytest.approx(expected, rel=0.08)


def test_manufacturer_multiplies_the_rate() -> None:
    """VibrationPlus runs 20 % more anomalies than SensorTech, DataSense 20 % fewer."""
    config = build_config(
        {
            "anomalies": {
                "probability": 0.1,
                "types": {
                    "trend": {"duration_seconds": 5},
                    "pattern": {"duration_seconds": 5},
                    "missing_data": {"duration_seconds": 5},
                    "noise": {"duration_seconds": 5},
                },
            }
        },
        "test",
    )
    shares = {}
    for maker in ("SensorTech", "VibrationPlus", "DataSense"):
        kinds = kinds_of(generator(config, manufacturer=maker, firmware_version="9.9"), 1_000_000)
        shares[maker] = float((kinds > 0).mean())
    assert shares["SensorTech"] == pytest.approx(0.10, rel=0.05)
    assert shares["VibrationPlus"] == pytest.approx(0.12, rel=0.05)
    assert shares["DataSense"] == pytest.approx(0.08, rel=0.05)


def episode_types(kinds: np.ndarray) -> np.ndarray:
    """The type code of each run of flagged readings (one run per episode)."""
    starts = np.flatnonzero((kinds > 0) & np.concatenate(([True], kinds[1:] != kinds[:-1])))
    return kinds[starts]


@pytest.mark.parametrize(
    ("model", "boosted", "factor"),
    [
        ("TempVibe-1000", "missing_data", 2.0),
        ("TempVibe-2000", "pattern", 1.5),
        ("TempVibe-3000", "spike", 1.5),
    ],
)
def test_model_shifts_the_anomaly_type_mix(model: str, boosted: str, factor: float) -> None:
    """Each model makes its documented anomaly type 1.5–2× as likely as the neutral model."""
    config = build_config(
        {
            "anomalies": {
                "probability": 0.2,
                "types": {
                    "trend": {"duration_seconds": 3},
                    "pattern": {"duration_seconds": 3},
                    "missing_data": {"duration_seconds": 3},
                    "noise": {"duration_seconds": 3},
                },
            }
        },
        "test",
    )

    def episode_share(model_name: str) -> float:
        types = episode_types(kinds_of(generator(config, model=model_name, seed=11), 1_000_000))
        return float((types == KIND_CODES[boosted]).mean())

    neutral = episode_share("Generic-1")
    weights = {"spike": 0.4, "trend": 0.2, "pattern": 0.1, "missing_data": 0.1, "noise": 0.2}
    expected = weights[boosted] * factor / (1 + weights[boosted] * (factor - 1))
    assert neutral == pytest.approx(weights[boosted], rel=0.08)
    assert episode_share(model) == pytest.approx(expected, rel=0.08)


def test_row_shares_by_type_match_calibration() -> None:
    """The share of flagged rows of each type matches the calibrated mix."""
    gen = generator(seed=21, model="TempVibe-1000")
    mix = gen.settings.mix
    kinds = kinds_of(gen, 8_000_000)
    flagged = kinds[kinds > 0]
    for name, share in mix.row_shares().items():
        observed = float((flagged == KIND_CODES[name]).mean())
        assert observed == pytest.approx(share, abs=0.03), name


def test_disabled_anomalies_and_zero_probability_flag_nothing() -> None:
    """anomalies.enabled false or probability 0 produces only normal readings."""
    for raw in ({"anomalies": {"enabled": False}}, {"anomalies": {"probability": 0}}):
        kinds = generator(build_config(raw, "test")).generate(200_000).kinds
        assert not kinds.any()


def quiet(**extra: Any) -> Config:
    return build_config({"anomalies": {"enabled": False}, **extra}, "test")


def hourly_means(
    gen: SensorGenerator, column: int, days: int = 14, tz_shift_hours: float = 0
) -> np.ndarray:
    block = gen.generate(days * 24 * 60)  # readings_per_second is 1/60 in these tests
    hours = ((block.times_us / 1e6 + tz_shift_hours * 3600) % 86400 // 3600).astype(int)
    return np.array([block.values[hours == h, column].mean() for h in range(24)])


def test_daily_cycle_peaks_at_15_and_bottoms_at_3_local_time() -> None:
    """Temperature averaged by hour peaks at 15:00 and is lowest at 03:00, in local time."""
    config = quiet(simulation={"readings_per_second": 1 / 60})
    utc = hourly_means(generator(config, location="Lab"), 0)
    assert int(np.argmax(utc)) == 15
    assert int(np.argmin(utc)) == 3
    assert utc.max() - utc.min() == pytest.approx(4.0, rel=0.1)  # ±1 std_dev of 2 °C
    start = 1_705_000_000.0  # January: Chicago is UTC-6
    chicago = hourly_means(
        generator(config, start=start, location="Lab", timezone="America/Chicago"),
        0,
        tz_shift_hours=-6,
    )
    assert int(np.argmax(chicago)) == 15


def test_location_effects() -> None:
    """Warehouses are steadier and shake more; outdoors swings more; factories warm by day."""
    config = quiet(simulation={"readings_per_second": 1 / 60})

    def stats(location: str) -> tuple[float, float, float]:
        block = generator(config, location=location).generate(28 * 24 * 60)
        daily = hourly_means(generator(config, location=location), 0, days=28)
        residual = block.values[:, 0] - daily[(block.times_us / 1e6 % 86400 // 3600).astype(int)]
        return float(residual.std()), float(block.values[:, 1].std()), float(np.ptp(daily))

    lab, warehouse, outdoor = stats("Lab 1"), stats("Warehouse B"), stats("Outdoor - Area 1")
    assert warehouse[0] < 0.7 * lab[0]
    assert warehouse[1] > 1.3 * lab[1]
    assert outdoor[2] > 2 * lab[2]

    factory = generator(config, location="Factory A - Line 1").generate(28 * 24 * 60)
    local = factory.times_us / 1e6
    hour = local % 86400 // 3600
    weekday = (local // 86400 + 3) % 7
    work = factory.values[(hour == 12) & (weekday < 5), 0].mean()
    weekend = factory.values[(hour == 12) & (weekday >= 5), 0].mean()
    assert work - weekend == pytest.approx(3.0, abs=0.5)  # 1.5 std_dev of 2 °C


def test_firmware_13_spikes_hit_temperature_most() -> None:
    """On firmware 1.3, about 60 % of spikes hit temperature; 1.4 spreads them evenly."""
    config = build_config(
        {
            "anomalies": {
                "probability": 0.3,
                "types": {
                    name: {"enabled": name == "spike"}
                    for name in ("trend", "pattern", "missing_data", "noise")
                },
            }
        },
        "test",
    )
    for firmware, expected in (("1.3", 0.6), ("1.4", 1 / 3)):
        gen = generator(config, firmware_version=firmware, seed=4)
        base = generator(quiet(), firmware_version=firmware, seed=4)
        block, plain = gen.generate(200_000), base.generate(200_000)
        spiked = block.kinds == KIND_CODES["spike"]
        changed = ~np.isclose(block.values[spiked], plain.values[spiked])
        assert changed[:, 0].mean() == pytest.approx(expected, abs=0.03)


def test_missing_data_rows_are_null_or_skipped() -> None:
    """missing_data writes NULL values by default and nothing with record: skip."""
    only_missing = {
        "anomalies": {
            "probability": 0.2,
            "types": {
                name: {"enabled": name == "missing_data"}
                for name in ("spike", "trend", "pattern", "noise")
            },
        }
    }
    block = generator(build_config(only_missing, "test")).generate(50_000)
    rows = block.rows()
    missing = [r for r in rows if r[7] == "missing_data"]
    assert missing and all(r[2] is None or r[2] != r[2] for r in missing)
    skip = build_config(
        {
            **only_missing,
            "anomalies": {
                **only_missing["anomalies"],
                "types": {**only_missing["anomalies"]["types"], "missing_data": {"record": "skip"}},
            },
        },
        "test",
    )
    skipped = generator(skip).generate(50_000)
    assert skipped.row_count < len(skipped)
    assert all(r[7] != "missing_data" for r in skipped.rows())


def test_calibration_solves_for_the_start_rate() -> None:
    """The renewal-process calibration gives back the target flagged share."""
    config = build_config({}, "test")
    settings = Settings.resolve(config, identity(firmware_version="1.4"))
    mix = calibrate(config.anomalies, settings.behaviour, 1.0)
    s, length = mix.start_probability, mix.mean_length
    assert length / ((1 - s) / s + length) == pytest.approx(0.035)
    assert set(mix.type_probabilities) == set(KIND_NAMES[1:])


def _values(blocks: list[Any]) -> np.ndarray:
    return np.concatenate([b.values for b in blocks])


def test_reading_ahead_serves_the_same_stream_one_at_a_time() -> None:
    """Serving 1 reading at a time from the look-ahead equals one large block."""
    config = build_config({"anomalies": {"probability": 0.3}}, "test")
    single = generator(config, seed=8)
    assert single.lookahead == 30
    served = [single.generate(1) for _ in range(5000)]
    whole = generator(config, seed=8).generate(5000)
    assert np.array_equal(_values(served), whole.values, equal_nan=True)
    assert [b.first_index for b in served[:3]] == [0, 1, 2]


def test_reconfigure_mid_lookahead_applies_from_the_next_reading() -> None:
    """A change while readings wait ahead takes effect at once, exactly as without look-ahead."""
    config = build_config({"anomalies": {"probability": 0.3}}, "test")
    upgraded = Settings.resolve(config, identity(firmware_version="1.4", location="Lab"))

    ahead = generator(config, seed=12)
    first = [ahead.generate(1) for _ in range(7)]  # 23 readings still waiting ahead
    ahead.reconfigure(upgraded)
    after = [ahead.generate(1) for _ in range(500)]

    plain = generator(config, seed=12)
    reference_first = plain.generate(7)
    plain.reconfigure(upgraded)
    reference_after = plain.generate(500)

    assert np.array_equal(_values(first), reference_first.values, equal_nan=True)
    assert np.array_equal(_values(after), reference_after.values, equal_nan=True)
    assert {b.labels.firmware_version for b in after} == {"1.4"}


def test_forced_anomaly_starts_at_the_next_reading_despite_lookahead() -> None:
    """force_anomaly flags the very next reading; end_anomaly stops it at once."""
    gen = generator(quiet(), seed=2)
    gen.generate(3)
    gen.force_anomaly("noise", 20)
    block = gen.generate(5)
    assert block.kinds.tolist() == [KIND_CODES["noise"]] * 5
    episode = gen.current_episode()
    assert episode is not None and (episode.kind, episode.end_index) == ("noise", 23)
    assert gen.end_anomaly() == "noise"
    assert not gen.generate(30).kinds.any()
    assert gen.current_episode() is None


def test_staggered_sensors_read_ahead_on_different_ticks_with_the_same_stream() -> None:
    """Sensors given staggers 0…29 produce their look-ahead one per tick, not all thirty in
    the same tick (each every 30 readings still), and each serves the unstaggered stream."""
    config = build_config({"anomalies": {"probability": 0.3}}, "test")
    streams = [generator(config, seed=4) for _ in range(30)]
    for position, stream in enumerate(streams):
        stream.stagger = position
    served: list[list[Any]] = [[] for _ in streams]
    producing_per_tick = []
    for _ in range(90):
        before = [stream._produced for stream in streams]
        for stream, blocks in zip(streams, served, strict=True):
            blocks.append(stream.generate(1))
        producing_per_tick.append(
            sum(stream._produced != was for stream, was in zip(streams, before, strict=True))
        )
    assert producing_per_tick == [30] + [1] * 89  # the first tick starts every stream
    whole = generator(config, seed=4).generate(90)
    for blocks in served:
        assert np.array_equal(_values(blocks), whole.values, equal_nan=True)
        assert np.array_equal(np.concatenate([b.kinds for b in blocks]), whole.kinds)


@pytest.mark.parametrize("rate", [1, 3, 7.5, 1000])
def test_the_first_reading_after_an_instant_matches_the_schedule(rate: float) -> None:
    """index_after (which a live tick asks with its next reading due) names the first
    reading scheduled strictly after the instant, for periods that do not divide a second."""
    config = build_config({"simulation": {"readings_per_second": rate}}, "test")
    stream = generator(config)
    for served in range(0, 40, 3):
        if served > stream.next_index:
            stream.generate(served - stream.next_index)
        for offset_us in (-1, 0, 1, 333_333, 999_999, 1_000_000, 2_500_000):
            instant = START + offset_us / 1e6 + served / rate
            expected = next(i for i in range(10_000) if stream.time_of(i) > instant)
            assert stream.index_after(instant) == expected
