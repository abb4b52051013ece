"""A block of readings: the unit the generator produces and the store writes.

Values live in numpy arrays so a block of thousands of readings costs a few
vectorised operations; ``rows`` turns them into the tuples SQLite binds, in
``COLUMNS`` order. This module is the only contract between generator and store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import numpy.typing as npt

from .layout import CLASSIC, TableLayout
from .profiles import ANOMALY_TYPES
from .stamps import iso_utc

# Columns written for each classic reading (``id`` and ``synced`` are filled by SQLite);
# ``iter_rows`` yields its tuples in this order.
COLUMNS: tuple[str, ...] = CLASSIC.names

# Anomaly kinds are small integers in arrays; 0 means a normal reading.
KIND_NAMES: tuple[str | None, ...] = (None, *ANOMALY_TYPES)
KIND_CODES: dict[str, int] = {name: code for code, name in enumerate(KIND_NAMES) if name}
_KIND_OBJECTS = np.array(KIND_NAMES, dtype=object)
# The identity columns of a row, in ``COLUMNS`` order.
_LABEL_NAMES = ("sensor_id", "firmware_version", "model", "manufacturer", "location")

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Labels:
    """The identity fields stamped on every row."""

    sensor_id: str
    firmware_version: str
    model: str
    manufacturer: str
    location: str


class Readings(Protocol):
    """What the writer buffers and the store writes, whatever the sensor's type: the
    classic ``Block`` or an equipment model's ``machine.MachineBlock``."""

    first_index: int
    labels: Labels
    keep: Any

    @property
    def layout(self) -> TableLayout: ...
    @property
    def times_us(self) -> npt.NDArray[np.int64]: ...
    @property
    def row_count(self) -> int: ...
    def __len__(self) -> int: ...
    def slice(self, start: int, stop: int) -> Self: ...
    def anomaly_counts(self) -> dict[str, int]: ...
    def iter_rows(self) -> Iterator[Row]: ...
    def truth_rows(self) -> Iterator[Row] | None: ...


@dataclass
class Block:
    """Consecutive readings of one sensor.

    ``times_us`` are epoch microseconds; ``values`` is ``(n, 3)`` temperature,
    vibration, voltage with NaN for missing data; ``kinds`` the anomaly code
    per reading; ``keep`` marks readings that produce a row.
    """

    first_index: int
    times_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    kinds: npt.NDArray[np.int8]
    labels: Labels
    keep: npt.NDArray[np.bool_] | None = None
    layout: ClassVar[TableLayout] = CLASSIC

    def __len__(self) -> int:
        return int(self.times_us.shape[0])

    def truth_rows(self) -> None:
        """A classic row carries its labels (anomaly flag and type) itself."""
        return None

    @property
    def row_count(self) -> int:
        return int(self.times_us.shape[0]) if self.keep is None else int(self.keep.sum())

    def anomaly_counts(self) -> dict[str, int]:
        return _kind_counts(self.kinds if self.keep is None else self.kinds[self.keep])

    def slice(self, start: int, stop: int) -> Block:
        """Readings ``[start, stop)`` of this block as a block of their own."""
        return Block(
            first_index=self.first_index + start,
            times_us=self.times_us[start:stop],
            values=self.values[start:stop],
            kinds=self.kinds[start:stop],
            labels=self.labels,
            keep=None if self.keep is None else self.keep[start:stop],
        )

    @classmethod
    def concat(cls, blocks: list[Block]) -> Block:
        """Consecutive blocks of one sensor as one block."""
        keeps = [b.keep if b.keep is not None else np.ones(len(b), dtype=bool) for b in blocks]
        any_keep = any(b.keep is not None for b in blocks)
        return cls(
            first_index=blocks[0].first_index,
            times_us=np.concatenate([b.times_us for b in blocks]),
            values=np.concatenate([b.values for b in blocks]),
            kinds=np.concatenate([b.kinds for b in blocks]),
            labels=blocks[-1].labels,
            keep=np.concatenate(keeps) if any_keep else None,
        )

    def rows(self) -> list[Row]:
        """SQLite-ready tuples in ``COLUMNS`` order (NaN binds as NULL)."""
        return list(self.iter_rows())

    @classmethod
    def rows_of(cls, blocks: Sequence[Block]) -> Iterator[Row]:
        """The rows of ``blocks`` (of any sensors), in order: the same tuples as their
        ``iter_rows`` one after the other. A live flush holds one reading of each of
        thousands of sensors, and converting each block on its own costs a dozen numpy
        calls per reading; here they are made once for the whole flush."""
        if not blocks:
            return iter(())
        times = np.concatenate([b.times_us for b in blocks])
        values = np.concatenate([b.values for b in blocks])
        kinds = np.concatenate([b.kinds for b in blocks])
        lengths = [len(b) for b in blocks]
        labels: list[Labels] = [b.labels for b in blocks]
        if any(length != 1 for length in lengths):
            labels = [
                label for b, n in zip(blocks, lengths, strict=True) for label in [b.labels] * n
            ]
        if any(b.keep is not None for b in blocks):
            keep = np.concatenate(
                [b.keep if b.keep is not None else np.ones(len(b), dtype=bool) for b in blocks]
            )
            times, values, kinds = times[keep], values[keep], kinds[keep]
            labels = list(compress(labels, keep.tolist()))
        return _zip_rows(times, values, kinds, labels)

    @classmethod
    def anomaly_counts_of(cls, blocks: Sequence[Block]) -> dict[str, int]:
        """``anomaly_counts`` of ``blocks`` added up, in one count for all of them."""
        if not blocks:
            return {}
        return _kind_counts(
            np.concatenate([b.kinds if b.keep is None else b.kinds[b.keep] for b in blocks])
        )

    def iter_rows(self) -> Iterator[Row]:
        """Rows produced lazily, so a large block never exists as tuples all at once."""
        times, values, kinds = self.times_us, self.values, self.kinds
        if self.keep is not None and not self.keep.all():
            times, values, kinds = times[self.keep], values[self.keep], kinds[self.keep]
        return _zip_rows(times, values, kinds, self.labels)


def _kind_counts(kinds: npt.NDArray[Any]) -> dict[str, int]:
    """Readings per anomaly name among these kinds (normal readings left out)."""
    counts = np.bincount(kinds, minlength=len(KIND_NAMES))
    return {name: int(counts[code]) for name, code in KIND_CODES.items() if counts[code]}


def _zip_rows(
    times: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    kinds: npt.NDArray[Any],
    labels: Labels | Sequence[Labels],
) -> Iterator[Row]:
    """Rows in ``COLUMNS`` order, made lazily from whole columns; ``labels`` are one
    sensor's for every reading (a block) or each reading's own (a flush of many)."""
    label_columns: tuple[Iterable[str], ...]
    if isinstance(labels, Labels):
        label_columns = tuple(repeat(getattr(labels, name)) for name in _LABEL_NAMES)
    else:
        label_columns = tuple([getattr(label, name) for label in labels] for name in _LABEL_NAMES)
    sensor_ids, firmware, models, manufacturers, locations = label_columns
    flags = (kinds > 0).astype(np.int64).tolist()
    return iter(
        zip(
            iso_utc(times),
            sensor_ids,
            values[:, 0].tolist(),
            values[:, 1].tolist(),
            values[:, 2].tolist(),
            flags,
            flags,
            _KIND_OBJECTS[kinds].tolist(),
            firmware,
            models,
            manufacturers,
            locations,
            # One sensor's labels repeat without end; per-reading labels must match.
            strict=not isinstance(labels, Labels),
        )
    )
