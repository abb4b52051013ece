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
