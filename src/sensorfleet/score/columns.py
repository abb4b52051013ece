"""Columns of text turned into numpy arrays without a Python object per value.

Both readers (CSV files, and SQLite tables read through ``group_concat``) end
up with one byte buffer per column and the start and end of every value in
it. Everything after that is vectorised: values become a fixed-width bytes
array, then floats, timestamps (int64 microseconds since 1970, UTC) or
categorical codes: a few passes of numpy per column instead of a Python object
per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

Bools = NDArray[np.bool_]
Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Codes = NDArray[np.int32]

_EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


class ColumnError(ValueError):
    """A value that does not fit its column; ``row`` is its 0-based index."""

    def __init__(self, row: int, value: bytes, expected: str) -> None:
        self.row = row
        self.value = value
        self.expected = expected
        shown = value.decode("utf-8", "replace")
        super().__init__(f"expected {expected} (got {shown!r})")


@dataclass(frozen=True)
class TextColumn:
    """Values lying in one byte buffer: value ``i`` is ``buffer[starts[i]:ends[i]]``."""

    buffer: NDArray[np.uint8]
    starts: Ints
    ends: Ints

    def __len__(self) -> int:
        return len(self.starts)

    def strings(self, multiple: int = 1) -> NDArray[np.bytes_]:
        """The values as a fixed-width bytes array (NUL-padded, as numpy pads ``S``), its
        width a ``multiple`` of that many bytes."""
        n = len(self.starts)
        lengths = self.ends - self.starts
        width = max(int(lengths.max()) if n else 1, 1)
        width = -(-width // multiple) * multiple
        if n == 0 or len(self.buffer) == 0:
            return np.zeros(n, dtype=f"S{width}")
        # Every ``width`` bytes of the buffer as one value starting at each byte: picking
        # the ones at ``starts`` copies every value in one gather of fixed-size items.
        limit = len(self.buffer) - width
        inside = self.starts <= limit
        out = np.zeros(n, dtype=f"S{width}")
        matrix = out.view(np.uint8).reshape(n, width)
        ragged = not (lengths == width).all()
        if limit >= 0:
            windows = _windows(self.buffer, width)
            positions = np.arange(width)
            # A block of rows at a time, so the mask clearing each value's tail is cached.
            for first in range(0, n, BLOCK_ROWS):
                rows = slice(first, first + BLOCK_ROWS)
                if inside[rows].all():
                    out[rows] = windows[self.starts[rows]]
                else:
                    block = out[rows]
                    block[inside[rows]] = windows[self.starts[rows][inside[rows]]]
                if ragged:  # clear the bytes past each shorter value
                    np.multiply(matrix[rows], positions < lengths[rows, None], out=matrix[rows])
        for row in np.flatnonzero(~inside):  # the few values too near the buffer's end
            value = self.buffer[self.starts[row] : self.ends[row]]
            matrix[row, : len(value)] = value
            matrix[row, len(value) :] = 0
        return out


def _windows(buffer: NDArray[np.uint8], width: int) -> NDArray[np.bytes_]:
    """A read-only view of ``buffer``: item ``i`` is the ``width`` bytes from byte ``i``."""
    return np.ndarray(
        (len(buffer) - width + 1,), dtype=f"S{width}", buffer=buffer.data, strides=(1,)
    )


def from_strings(values: Sequence[str | bytes | None]) -> TextColumn:
    """A column from Python values (the slow readers: JSON lines, PostgreSQL); None → empty."""
    encoded = [b"" if v is None else v if isinstance(v, bytes) else str(v).encode() for v in values]
    lengths = np.fromiter((len(v) for v in encoded), dtype=np.int64, count=len(encoded))
    ends = np.cumsum(lengths)
    buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return TextColumn(buffer, ends - lengths, ends)


def split_joined(text: bytes, separator: int, expected: int) -> TextColumn | None:
    """The values of ``text`` joined by the byte ``separator``; None unless there are
    exactly ``expected`` of them (a value contained the separator, or was NULL)."""
    if expected == 0:
        return TextColumn(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    buffer = np.frombuffer(text, dtype=np.uint8)
    cuts = np.flatnonzero(buffer == separator)
    if len(cuts) != expected - 1:
        return None
    starts = np.empty(expected, dtype=np.int64)
    starts[0] = 0
    starts[1:] = cuts + 1
    ends = np.empty(expected, dtype=np.int64)
    ends[:-1] = cuts
    ends[-1] = len(buffer)
    return TextColumn(buffer, starts, ends)


def concat(columns: Sequence[TextColumn]) -> TextColumn:
    """One column holding the values of several, in order."""
    if len(columns) == 1:
        return columns[0]
    offsets = np.cumsum([0] + [len(c.buffer) for c in columns[:-1]])
    buffer = np.concatenate([c.buffer for c in columns]) if columns else np.zeros(0, np.uint8)
    starts = np.concatenate([c.starts + o for c, o in zip(columns, offsets, strict=True)])
    ends = np.concatenate([c.ends + o for c, o in zip(columns, offsets, strict=True)])
    return TextColumn(buffer, starts, ends)


def _first_bad(strings: NDArray[np.bytes_], convert: type, expected: str) -> ColumnError:
    for row, value in enumerate(strings.tolist()):
        try:
            convert(value)
        except (ValueError, OverflowError):
            return ColumnError(row, value, expected)
    return ColumnError(0, b"", expected)


def to_floats(column: TextColumn, expected: str = "a number") -> Floats:
    """Numbers; an empty value is NaN. ``ColumnError`` names the first value that is not."""
    strings = column.strings()
    sample = strings[:1000]
    if _plain_decimals(sample)[1].sum() * 2 >= len(sample):
        values, plain = _plain_decimals(strings)
        if plain.all():
            return values
        try:
            values[~plain] = _general_floats(strings[~plain])
            return values
        except ValueError:
            pass  # the general parser names the first value that is not a number
    try:
        return _general_floats(strings)
    except ValueError:
        blank = strings == b""
        strings = strings.astype(f"S{max(strings.dtype.itemsize, 3)}")
        strings[blank] = b"nan"
        raise _first_bad(strings, float, expected) from None


def _general_floats(strings: NDArray[np.bytes_]) -> Floats:
    """numpy's conversion (Python's spellings: exponents, inf, nan, spaces); empty is NaN."""
    blank = strings == b""
    if blank.any():  # wide enough for "nan" even when every value is empty
        strings = strings.astype(f"S{max(strings.dtype.itemsize, 3)}")
        strings[blank] = b"nan"
    return strings.astype(np.float64)


# 10**k for the digits after the point: exact as doubles up to 10**22.
_POWERS = 10.0 ** np.arange(23)
_MAX_DIGITS = 15  # every integer of 15 digits is exact as a double


def _plain_decimals(strings: NDArray[np.bytes_]) -> tuple[Floats, Bools]:
    """The values spelt as plain decimals (an optional sign, at most 15 digits, at most one
    point; empty is NaN), and which values were. Each is its digits as an integer divided
    by a power of ten: both exact as doubles, so the one correctly rounded division gives
    the double nearest the decimal, as Python's and numpy's parsers do."""
    n, width = len(strings), strings.dtype.itemsize
    matrix = strings.view(np.uint8).reshape(n, width)
    values = np.empty(n, dtype=np.float64)
    plain = np.empty(n, dtype=bool)
    for first in range(0, n, BLOCK_ROWS):  # a block at a time: its temporaries stay cached
        rows = slice(first, first + BLOCK_ROWS)
        values[rows], plain[rows] = _decimal_block(matrix[rows])
    return values, plain


def _decimal_block(matrix: NDArray[np.uint8]) -> tuple[Floats, Bools]:
    n, width = matrix.shape
    mantissa = np.zeros(n, dtype=np.int64)
    digits = np.zeros(n, dtype=np.int64)
    after_point = np.zeros(n, dtype=np.int64)
    point = np.zeros(n, dtype=bool)
    ended = np.zeros(n, dtype=bool)
    plain = np.ones(n, dtype=bool)
    negative = np.zeros(n, dtype=bool)
    for position in range(width):
        byte = matrix[:, position]
        digit = byte - np.uint8(ord("0"))
        is_digit = digit < 10  # anything below "0" wraps past 9
        is_point = byte == ord(".")
        is_end = byte == 0
        known = is_digit | is_point | is_end
        if position == 0:
            negative = byte == ord("-")
            known |= negative | (byte == ord("+"))
        plain &= known & ~(ended & ~is_end) & ~(is_point & point)
        with np.errstate(over="ignore"):  # rows of too many digits are not plain anyway
            mantissa = np.where(is_digit, mantissa * 10 + digit, mantissa)
        digits += is_digit
        after_point += is_digit & point
        point |= is_point
        ended |= is_end
    blank = matrix[:, 0] == 0 if width else np.ones(n, dtype=bool)
    plain &= ((digits >= 1) & (digits <= _MAX_DIGITS)) | blank
    values = mantissa / _POWERS[np.minimum(after_point, len(_POWERS) - 1)]
    np.negative(values, out=values, where=negative)
    values[blank] = np.nan
    return values, plain


def to_flags(column: TextColumn) -> tuple[Bools, Bools]:
    """0/1 flags (also true/false); and which values were empty (no flag given)."""
    strings = column.strings()
    blank = strings == b""
    ones = strings == b"1"
    bad = ~(ones | blank | (strings == b"0"))
    if bad.any():  # other spellings: slower, so only when they occur
        lowered = np.char.lower(strings) if strings.dtype.itemsize <= 8 else strings
        ones = (lowered == b"1") | (lowered == b"true") | (lowered == b"1.0")
        zeros = (lowered == b"0") | (lowered == b"false") | (lowered == b"0.0")
        bad = ~(ones | zeros | blank)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ColumnError(row, bytes(strings[row]), "0 or 1")
    return ones, blank


def to_codes(column: TextColumn, labels: dict[str, int] | None = None) -> tuple[Codes, list[str]]:
    """Categorical codes and their labels (code ``i`` is ``labels[i]``).

    Values often come in long runs (one sensor's rows, one episode); then only
    the first value of each run is looked up. Interleaved values (a fleet's rows
    in write order) are grouped by comparing 64-bit words instead.
    """
    table = {} if labels is None else labels
    n = len(column)
    if n == 0:
        return np.zeros(0, np.int32), list(table)
    strings = column.strings(multiple=8)
    words = strings.view(np.uint64).reshape(n, -1)  # each value as whole 64-bit words
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for word in words.T:
        changed[1:] |= word[1:] != word[:-1]
    heads = np.flatnonzero(changed)
    if len(heads) > 64 and len(heads) * 8 > n:
        return _hashed_codes(strings, words, table), list(table)
    head_codes = np.empty(len(heads), dtype=np.int32)
    for index, value in enumerate(strings[heads].tolist()):
        text = value.decode("utf-8", "replace")
        head_codes[index] = table.setdefault(text, len(table))
    lengths = np.diff(np.append(heads, n))
    return np.repeat(head_codes, lengths), list(table)


FEW_VALUES = 16  # interleaved values up to this many kinds are grouped by comparison


def _hashed_codes(
    strings: NDArray[np.bytes_], words: NDArray[np.uint64], table: dict[str, int]
) -> Codes:
    """Codes of interleaved values, labelled in the order of a hash of each value's words
    (sorted values where two hashes collide). A few kinds of values (sensors, models) are
    grouped by comparing every row with each kind's first row; more by sorting the hashes
    (integers sort fast, strings do not), then checking every value against its group's
    first value, so a hash collision can never merge two labels."""
    hashed = np.zeros(len(strings), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in words.T:
            hashed = hashed * np.uint64(0x9E3779B97F4A7C15) + word
    found = _few_groups(words)
    if found is not None:
        group, first = found
        if len(np.unique(hashed[first])) == len(first):
            rank = np.argsort(np.argsort(hashed[first]))
        else:  # as the general path below: the sorted values
            rank = np.argsort(np.argsort(strings[first]))
        representatives = strings[first][np.argsort(rank)]
        inverse = rank[group]
    else:
        _, first, inverse = np.unique(hashed, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        representatives = strings[first]
        if not (representatives[inverse] == strings).all():  # a collision: sort the strings
            representatives, inverse = np.unique(strings, return_inverse=True)
            inverse = inverse.ravel()
    mapping = np.array(
        [table.setdefault(v.decode("utf-8", "replace"), len(table)) for v in representatives],
        dtype=np.int32,
    )
    return mapping[inverse]


def _few_groups(words: NDArray[np.uint64]) -> tuple[Codes, Ints] | None:
    """Each row's group of equal values (numbered by first appearance) and each group's
    first row, if there are at most ``FEW_VALUES`` groups; else None."""
    n = len(words)
    group = np.full(n, -1, dtype=np.int32)
    first: list[int] = []
    next_row = 0
    while next_row < n:
        if len(first) == FEW_VALUES:
            return None
        equal = words[:, 0] == words[next_row, 0]
        for column in range(1, words.shape[1]):
            equal &= words[:, column] == words[next_row, column]
        group[equal] = len(first)
        first.append(next_row)
        left = np.flatnonzero(group[next_row:] < 0)
        next_row = next_row + int(left[0]) if len(left) else n
    return group, np.array(first, dtype=np.int64)


def to_micros(column: TextColumn, expected: str = "an ISO-8601 time") -> Ints:
    """Timestamps as int64 microseconds since 1970 UTC.

    Accepts ISO 8601 (``2024-03-01T00:00:00.500000Z``, a space instead of ``T``,
    ``Z`` or ``+00:00`` or no zone, which is taken as UTC; other offsets are
    converted) and numbers (seconds since 1970).
    """
    fixed = _node_micros(column)
    if fixed is not None:
        return fixed
    strings = column.strings()
    if len(strings) == 0:
        return np.zeros(0, np.int64)
    first = bytes(strings[0])
    try:
        float(first)
    except ValueError:
        return _iso_micros(strings, expected)
    seconds = to_floats(column, f"{expected} or seconds since 1970")
    bad = ~np.isfinite(seconds)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ColumnError(row, bytes(strings[row]), f"{expected} or seconds since 1970")
    return np.round(seconds * 1_000_000).astype(np.int64)


# The node's spelling, YYYY-MM-DDTHH:MM:SS.ffffffZ (fewer or no fraction digits too).
_SEPARATORS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":")}
_DATE_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)


def _node_micros(column: TextColumn) -> Ints | None:
    """Timestamps in the node's spelling, every value the same length, decoded digit by
    digit with integer arithmetic (several times faster than numpy's ISO parser, which
    gives the same instants); None if any value is spelt otherwise or out of range, for
    the general parsers to decide."""
    n = len(column)
    lengths = column.ends - column.starts
    if n == 0 or len(column.buffer) == 0:
        return None
    width = int(lengths[0])
    if not (width == 20 or 22 <= width <= 27) or not (lengths == width).all():
        return None
    if int(column.starts.max()) > len(column.buffer) - width:
        return None
    windows = _windows(column.buffer, width)
    out = np.empty(n, dtype=np.int64)
    # A block of rows at a time, so each column of digits is read from the cache.
    for first in range(0, n, BLOCK_ROWS):
        rows = windows[column.starts[first : first + BLOCK_ROWS]]
        micros = _node_block(rows.view(np.uint8).reshape(len(rows), width))
        if micros is None:
            return None
        out[first : first + BLOCK_ROWS] = micros
    return out


BLOCK_ROWS = 1 << 16


def _node_block(matrix: NDArray[np.uint8]) -> Ints | None:
    width = matrix.shape[1]
    separators = {**_SEPARATORS, width - 1: ord("Z")}
    if width > 20:
        separators[19] = ord(".")
    for position, byte in separators.items():
        if not (matrix[:, position] == byte).all():
            return None
    positions = [*_DATE_DIGITS, *range(20, width - 1)]
    digits = [matrix[:, p] - np.uint8(ord("0")) for p in positions]
    if not all((d < 10).all() for d in digits):  # anything but a digit wraps past 9
        return None

    def number(first: int, count: int) -> Ints:
        value = digits[first].astype(np.int64)
        for index in range(first + 1, first + count):
            value *= 10
            value += digits[index]
        return value

    year, month, day = number(0, 4), number(4, 2), number(6, 2)
    hour, minute, second = number(8, 2), number(10, 2), number(12, 2)
    fraction = number(14, width - 21) * 10 ** (27 - width) if width > 20 else 0
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    in_range = (month >= 1) & (month <= 12) & (day >= 1) & (hour < 24) & (minute < 60)
    in_range &= second < 60
    if not in_range.all() or not (day <= _MONTH_DAYS[month] + (leap & (month == 2))).all():
        return None
    # Days since 1970 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    shifted = year - (month <= 2)
    era = shifted // 400
    of_era = shifted - era * 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
    micros: Ints = seconds * 1_000_000 + fraction
    return micros


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _iso_micros(strings: NDArray[np.bytes_], expected: str) -> Ints:
    width = strings.dtype.itemsize
    matrix = strings.view(np.uint8).reshape(len(strings), width)
    lengths = width - (matrix[:, ::-1] != 0).argmax(axis=1)
    lengths[(matrix == 0).all(axis=1)] = 0
    # The node's own spelling (…Z, every value the same length) takes the fast path.
    if (lengths == width).all() and (matrix[:, width - 1] == ord("Z")).all():
        trimmed = np.ascontiguousarray(matrix[:, : width - 1]).view(f"S{width - 1}").ravel()
        try:
            return (trimmed.astype("datetime64[us]") - _EPOCH).astype(np.int64)
        except ValueError:
            pass
    return _slow_iso(strings, expected)


def _slow_iso(strings: NDArray[np.bytes_], expected: str) -> Ints:
    """One value at a time, for mixed spellings and zone offsets."""
    out = np.empty(len(strings), dtype=np.int64)
    cache: dict[bytes, int] = {}
    for row, value in enumerate(strings.tolist()):
        found = cache.get(value)
        if found is None:
            found = _parse_one(value, row, expected)
            if len(cache) < 4096:
                cache[value] = found
        out[row] = found
    return out


def _parse_one(value: bytes, row: int, expected: str) -> int:
    text = value.decode("utf-8", "replace").strip()
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ColumnError(row, value, expected) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
