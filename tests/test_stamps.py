"""Timestamp texts: the table formatter writes exactly what numpy's date printer writes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sensorfleet.node.stamps import END_US, FIRST_US, iso_utc


def numpy_texts(times_us: npt.NDArray[np.int64]) -> list[str]:
    stamps = np.datetime_as_string(times_us.astype("datetime64[us]"), unit="us", timezone="UTC")
    return list(stamps.tolist())


def test_every_year_a_node_accepts_formats_as_numpy_does() -> None:
    """300,000 random instants over years 1 to 9999, and the edges: the first and last
    microsecond, the epoch and either side of it, 29 February of a leap year."""
    times = np.random.default_rng(23).integers(FIRST_US, END_US, 300_000)
    edges = [FIRST_US, END_US - 1, -1, 0, 1, 951_782_400_000_000, 951_868_799_999_999]
    times = np.concatenate([times, np.array(edges, dtype=np.int64)])
    assert iso_utc(times) == numpy_texts(times)


def test_a_block_of_regular_readings_formats_as_numpy_does() -> None:
    times = (1_700_000_000_000_000 + np.arange(5_000) * 250_000).astype(np.int64)
    assert iso_utc(times) == numpy_texts(times)


def test_years_outside_1_to_9999_are_numpy_s_texts() -> None:
    times = np.array([FIRST_US - 1, FIRST_US, END_US], dtype=np.int64)
    assert iso_utc(times) == numpy_texts(times)
    assert iso_utc(times)[0].startswith("0000-12-31T23:59:59.999999")


def test_no_times_no_texts() -> None:
    assert iso_utc(np.array([], dtype=np.int64)) == []


def test_odd_rates_midnights_and_times_before_1970_format_as_numpy_does() -> None:
    """Equipment rows' times (every 30 s, at 7/s, anywhere, edges of a day) are numpy's
    ISO 8601 texts to the microsecond."""
    rng = np.random.default_rng(1)
    regular = 1_764_547_200_000_000 + np.arange(20_000, dtype=np.int64) * 30_000_000
    odd_rate = 1_764_547_200_000_000 + np.rint(np.arange(20_000) * 1e6 / 7).astype(np.int64)
    anywhere = rng.integers(-(10**15), 4 * 10**15, 20_000)
    edges = np.array([0, -1, 86_399_999_999, 86_400_000_000, 951_782_400_000_000])
    for times in (regular, odd_rate, anywhere, edges):
        expected = np.datetime_as_string(times.astype("datetime64[us]"), unit="us", timezone="UTC")
        assert iso_utc(times.astype(np.int64)) == expected.tolist()
