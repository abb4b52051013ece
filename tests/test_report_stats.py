"""The report's statistics: Wilson intervals on episode-aware sample sizes, expected values.

The coverage tests draw many independent streams from the real generator and
check that the intervals contain the configured value about as often as
their confidence level promises: neither far too narrow (a correct config
flagged) nor far too wide (a wrong config never flagged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sensorfleet.node.anomalies import calibrate
from sensorfleet.node.config import build_config
from sensorfleet.node.generator import SensorGenerator, Settings
from sensorfleet.node.identity import Identity
from sensorfleet.node.profiles import ANOMALY_TYPES, deep_merge, resolve
from sensorfleet.node.readings import KIND_CODES
from sensorfleet.report.aggregate import IdentityFields
from sensorfleet.report.expected import Expectations, expect_identity
from sensorfleet.report.stats import (
    length_ratio,
    rate_effective_n,
    share_interval,
    wilson,
    z_value,
)

FAST: dict[str, Any] = {
    "anomalies": {
        "probability": 0.05,
        "types": {
            "trend": {"duration_seconds": 8},
            "pattern": {"duration_seconds": 12},
            "missing_data": {"duration_seconds": 4},
            "noise": {"duration_seconds": 6},
        },
    }
}
NODE = Identity(
    id="S1",
    location="Warehouse B - Section 1",
    manufacturer="DataSense",
    model="TempVibe-1000",
    firmware_version="1.3",
)
IDENTITY = IdentityFields("1.3", "TempVibe-1000", "DataSense", "Warehouse B - Section 1")


def counts_by_type(kinds: np.ndarray) -> dict[str, tuple[int, int]]:
    """{type: (rows, episodes)} of one stream, episodes as runs of one kind."""
    starts = np.ones(len(kinds), dtype=bool)
    starts[1:] = kinds[1:] != kinds[:-1]
    found = {}
    for name, code in KIND_CODES.items():
        rows = int((kinds == code).sum())
        if rows:
            found[name] = (rows, int((starts & (kinds == code)).sum()))
    return found


@pytest.fixture(scope="module")
def streams() -> list[np.ndarray]:
    """120 independent 20,000-reading streams of one identity under the fast config."""
    config = build_config(FAST, "test")
    settings = Settings.resolve(config, NODE)
    return [SensorGenerator(settings, seed, 0.0).generate(20_000).kinds for seed in range(120)]


def test_wilson_matches_the_textbook_values() -> None:
    """Wilson's interval for 50 of 100 at 95 % is 40.38 %–59.62 %, and stays inside [0, 1]."""
    low, high = wilson(0.5, 100, z_value(0.95))
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = wilson(0.0, 50, 1.96)
    assert low == 0.0 and 0 < high < 0.08
    assert wilson(0.3, 0, 1.96) == (0.0, 1.0)


def test_design_effect_grows_with_episode_length() -> None:
    """Single-reading anomalies count as independent; 100-reading episodes count about once each."""
    assert rate_effective_n(10_000, 500, {"spike": (500, 500)}, None) == 10_000
    effective = rate_effective_n(10_000, 500, {"trend": (500, 5)}, None)
    assert effective == pytest.approx(10_000 / (0.95 * 100))
    # The configured lengths win when the sample happened to miss the long episodes.
    assert rate_effective_n(10_000, 500, {"spike": (500, 500)}, 100.0) < 120
    assert length_ratio({"spike": (10, 10), "trend": (90, 3)}) == pytest.approx(
        (10 + 90 * 30) / 100
    )


def test_rate_intervals_cover_the_configured_rate_as_promised(streams: list[np.ndarray]) -> None:
    """Across 120 simulated streams, 90 % intervals hold the configured rate 80–98 % of the time."""
    expected = expect_identity(build_config(FAST, "test"), IDENTITY, 1.0)
    z = z_value(0.90)
    rates, covered = [], 0
    for kinds in streams:
        by_type = counts_by_type(kinds)
        flagged = int((kinds > 0).sum())
        n = rate_effective_n(len(kinds), flagged, by_type, expected.length_ratio)
        low, high = wilson(flagged / len(kinds), n, z)
        covered += low <= expected.flag_rate <= high
        rates.append(flagged / len(kinds))
    assert np.mean(rates) == pytest.approx(expected.flag_rate, rel=0.05)
    assert 0.80 <= covered / len(streams) <= 0.98
    # Rows are not independent: a binomial interval on rows would be far too narrow.
    naive = sum(
        wilson(r, len(streams[0]), z)[0] <= expected.flag_rate <= wilson(r, len(streams[0]), z)[1]
        for r in rates
    )
    assert naive / len(streams) < 0.6


def test_type_share_intervals_cover_the_configured_shares(streams: list[np.ndarray]) -> None:
    """For every anomaly type, 90 % intervals on its share of anomalous rows hold the configured share 78–99 % of the time."""  # noqa: E501
    expected = expect_identity(build_config(FAST, "test"), IDENTITY, 1.0)
    z = z_value(0.90)
    for kind in ANOMALY_TYPES:
        covered = 0
        for kinds in streams:
            low, high = share_interval(
                kind, counts_by_type(kinds), z, expected.lengths, expected.episode_shares
            )
            covered += low <= expected.row_shares[kind] <= high
        assert 0.78 <= covered / len(streams) <= 0.99, kind


def test_absent_type_bound_uses_episode_counts() -> None:
    """A long type never seen in 30 episodes may still hold a large share of rows: the bound says so."""  # noqa: E501
    observed = {"spike": (20, 20), "trend": (80, 10)}
    low, high = share_interval("pattern", observed, 1.96, {"pattern": 12.0}, {})
    assert low == 0.0
    # 0 of 30 episodes allows an episode share near 11 %; at 12 readings against the
    # observed mean of 3.3 that is a row share around 30 %, far above 0 of 100 rows.
    assert 0.2 < high < 0.45


def test_expected_values_are_the_node_calibration() -> None:
    """Expected rate and type shares for an identity are the node's own calibrated mix."""
    config = build_config(FAST, "test")
    behaviour = resolve(
        config.profiles,
        firmware_version="1.3",
        manufacturer="DataSense",
        model="TempVibe-1000",
        location="Warehouse B - Section 1",
    )
    mix = calibrate(config.anomalies, behaviour, 1.0)
    expected = expect_identity(config, IDENTITY, 1.0)
    assert expected.flag_rate == pytest.approx(0.05 * 1.5 * 0.8)
    assert expected.flag_rate == pytest.approx(mix.flag_rate)
    assert expected.row_shares == pytest.approx(mix.row_shares())


def test_group_expectation_weights_identities_by_rows() -> None:
    """A group's expected rate is its identities' rates weighted by row counts; type shares by expected anomalies."""  # noqa: E501
    expectations = Expectations(build_config(FAST, "test"))
    old = IdentityFields("1.3", "TempVibe-2000", "SensorTech", "Factory A")
    new = IdentityFields("1.4", "TempVibe-2000", "SensorTech", "Factory A")
    combined = expectations.combine([(old, 3000), (new, 1000)])
    assert combined is not None
    assert combined.flag_rate == pytest.approx((3000 * 0.075 + 1000 * 0.035) / 4000)
    assert sum(combined.row_shares.values()) == pytest.approx(1.0)
    assert expectations.combine([]) is None


def test_skipped_outages_leave_the_expectation() -> None:
    """With missing_data recorded as 'skip', expected values describe the rows actually written."""
    skip = {"anomalies": {"types": {"missing_data": {"record": "skip"}}}}
    skip = deep_merge(FAST, skip)
    written = expect_identity(build_config(skip, "test"), IDENTITY, 1.0)
    full = expect_identity(build_config(FAST, "test"), IDENTITY, 1.0)
    assert "missing_data" not in written.row_shares
    assert sum(written.row_shares.values()) == pytest.approx(1.0)
    missing = full.flag_rate * full.row_shares["missing_data"]
    assert written.flag_rate == pytest.approx((full.flag_rate - missing) / (1 - missing))
