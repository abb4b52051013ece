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

    def strings(self) -> NDArray[np.bytes_]:
        """The values as a fixed-width bytes array (NUL-padded, as numpy pads ``S``)."""
        n = len(self.starts)
        lengths = self.ends - self.starts
        width = max(int(lengths.max()) if n else 1, 1)
        out = np.zeros((n, width), dtype=np.uint8)
        if n == 0 or len(self.buffer) == 0:
            return out.view(f"S{width}").ravel()
        # A view of every ``width`` bytes of the buffer, one row per starting byte: picking
        # the rows at ``starts`` copies every value in one gather.
        limit = len(self.buffer) - width
        inside = self.starts <= limit
        if limit >= 0:
            windows = np.lib.stride_tricks.as_strided(
                self.buffer, shape=(limit + 1, width), strides=(1, 1), writeable=False
            )
            out[inside] = windows[self.starts[inside]]
        for row in np.flatnonzero(~inside):  # the few values too near the buffer's end
            value = self.buffer[self.starts[row] : self.ends[row]]
            out[row, : len(value)] = value
        if not (lengths == width).all():  # clear the bytes past each shorter value
            out[np.arange(width) >= lengths[:, None]] = 0
        return out.view(f"S{width}").ravel()


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
    blank = strings == b""
    if blank.any():  # wide enough for "nan" even when every value is empty
        strings = strings.astype(f"S{max(strings.dtype.itemsize, 3)}")
        strings[blank] = b"nan"
    try:
        return strings.astype(np.float64)
    except ValueError:
        raise _first_bad(strings, float, expected) from None


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
    in write order) are grouped by sorting instead.
    """
    table = {} if labels is None else labels
    strings = column.strings()
    n = len(strings)
    if n == 0:
        return np.zeros(0, np.int32), list(table)
    heads = np.flatnonzero(np.concatenate(([True], strings[1:] != strings[:-1])))
    if len(heads) > 64 and len(heads) * 8 > n:
        return _hashed_codes(strings, table), list(table)
    head_codes = np.empty(len(heads), dtype=np.int32)
    for index, value in enumerate(strings[heads].tolist()):
        text = value.decode("utf-8", "replace")
        head_codes[index] = table.setdefault(text, len(table))
    lengths = np.diff(np.append(heads, n))
    return np.repeat(head_codes, lengths), list(table)


def _hashed_codes(strings: NDArray[np.bytes_], table: dict[str, int]) -> Codes:
    """Codes of interleaved values: hash each value's bytes as 64-bit words, group the
    hashes (integers sort fast, strings do not), then check every value against its
    group's first value, so a hash collision can never merge two labels."""
    n, width = len(strings), strings.dtype.itemsize
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = strings.view(np.uint8).reshape(n, width)
    hashed = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in padded.view(np.uint64).T:
            hashed = hashed * np.uint64(0x9E3779B97F4A7C15) + word
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


def to_micros(column: TextColumn, expected: str = "an ISO-8601 time") -> Ints:
    """Timestamps as int64 microseconds since 1970 UTC.

    Accepts ISO 8601 (``2024-03-01T00:00:00.500000Z``, a space instead of ``T``,
    ``Z`` or ``+00:00`` or no zone, which is taken as UTC; other offsets are
    converted) and numbers (seconds since 1970).
    """
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
