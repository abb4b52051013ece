"""Timestamp texts of readings, as SQLite stores them: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

numpy's ``datetime_as_string`` formats one element at a time through its generic
date printer: 0.23 µs a row, the largest part of a classic backfill's time outside SQLite
(docs/footprint.md, "Backfill: where the time goes"). Here the digits are looked up in
tables for whole columns at once, written into 28-byte lines as seven 32-bit words, and
the lines become strings with one decode and one split: 0.11 µs a row, the same texts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
# Years 1 to 9999 have four digits: the only ones the table formats (a node refuses
# others at start; anything else goes through numpy, whatever it prints for them).
FIRST_US = int(np.datetime64("0001-01-01T00:00:00", "us").astype(np.int64))
END_US = int(np.datetime64("10000-01-01T00:00:00", "us").astype(np.int64))


def _digit_words(width: int) -> npt.NDArray[np.uint32]:
    """The ASCII digits of 0 … 10**width - 1, zero-padded, as little-endian words."""
    text = "".join(f"{i:0{width}d}" for i in range(10**width)).encode("ascii")
    digits = np.frombuffer(text, dtype=np.uint8).reshape(-1, width)
    padded = np.zeros((digits.shape[0], 4), dtype=np.uint8)
    padded[:, :width] = digits
    return padded.view("<u4").ravel().astype(np.uint32)


_FOUR = _digit_words(4)  # "0000" … "9999": a whole word
_TWO = _digit_words(2)  # "00" … "99" in the word's first two bytes


def _word(text: str) -> np.uint32:
    """Four ASCII characters (NUL where digits go) as a little-endian word."""
    return np.uint32(int(np.frombuffer(text.encode("ascii"), dtype="<u4")[0]))


# The fixed characters of the line "YYYY-MM-DDTHH:MM:SS.ffffffZ\n", word by word.
_DASHES = _word("-\0\0-")  # "-MM-"
_T = _word("\0\0T\0")  # "DDTH"
_COLON_MINUTE = _word("\0:\0\0")  # "H:MM"
_COLON_POINT = _word(":\0\0.")  # ":SS."
_Z_NEWLINE = _word("\0\0Z\n")  # "ffZ\n"


def iso_utc(times_us: npt.NDArray[np.int64]) -> list[str]:
    """Epoch microseconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` texts, exactly as
    ``numpy.datetime_as_string(..., unit="us", timezone="UTC")`` writes them."""
    times = np.asarray(times_us, dtype=np.int64)
    if times.size == 0:
        return []
    if int(times.min()) < FIRST_US or int(times.max()) >= END_US:
        stamps = np.datetime_as_string(times.astype("datetime64[us]"), unit="us", timezone="UTC")
        return list(stamps.tolist())
    days, of_day = np.divmod(times, US_PER_DAY)
    day = days.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    year = month.astype("datetime64[Y]")
    seconds, micros = np.divmod(of_day, US_PER_SECOND)
    hours, seconds = np.divmod(seconds, 3600)
    minutes, seconds = np.divmod(seconds, 60)
    hour = _TWO[hours]
    lines = np.empty((times.shape[0], 7), dtype=np.uint32)
    lines[:, 0] = _FOUR[year.astype(np.int64) + 1970]
    lines[:, 1] = (_TWO[(month - year).astype(np.int64) + 1] << 8) | _DASHES
    lines[:, 2] = _TWO[(day - month).astype(np.int64) + 1] | _T | ((hour & 0xFF) << 24)
    lines[:, 3] = (hour >> 8) | _COLON_MINUTE | (_TWO[minutes] << 16)
    lines[:, 4] = _COLON_POINT | (_TWO[seconds] << 8)
    lines[:, 5] = _FOUR[micros // 100]
    lines[:, 6] = _TWO[micros % 100] | _Z_NEWLINE
    # The words hold their characters little-endian, whatever this machine's order.
    return lines.astype("<u4", copy=False).tobytes().decode("ascii").splitlines()
