"""What the event process hands to the channels: stretches of time with constant labels.

A segment holds the machine's state, its fault episodes and the times its state
started and ends. Fault episodes are fixed when they begin (a trip replaces the
episode with its trip time).

The event-by-event loop makes one ``Segment`` at a time; a run of plain state changes
taken at once is one ``Run`` of arrays, so a machine whose phases are shorter than its
readings (a moulding machine has about two per reading) costs array work, not an
object per phase. ``Segments`` keeps both in time order and hands them to the
simulator as ``Columns``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MachineFault:
    """One episode of a machine fault, fixed at onset (``tripped_at`` set at the trip)."""

    index: int
    onset: float
    course: float  # progressive: seconds from onset to the failure threshold
    severity: float
    end: float  # a step fault that clears by itself; INFINITY otherwise
    tripped_at: float | None = None


@dataclass(frozen=True)
class InstrumentFault:
    """One episode of an instrument fault (``index`` counts from the first instrument fault)."""

    index: int
    onset: float
    severity: float
    end: float


@dataclass(slots=True)
class Segment:
    """One stretch of time with constant labels, as the event-by-event loop makes it."""

    start: float
    end: float
    state: int
    state_start: float
    state_end: float
    demand: float
    fault: MachineFault | None
    instrument: InstrumentFault | None


@dataclass(slots=True)
class Run:
    """Consecutive plain state changes taken at once. Each segment is a whole state (it
    starts and ends with it) and all share one machine fault and one instrument fault.
    The arrays are never written in place: snapshots share them."""

    start: FloatArray
    end: FloatArray
    state: IntArray
    demand: FloatArray
    fault: MachineFault | None
    instrument: InstrumentFault | None

    def __len__(self) -> int:
        return len(self.start)

    def part(self, lo: int, hi: int) -> Run:
        """Segments ``lo``..``hi`` of the run."""
        return Run(
            self.start[lo:hi],
            self.end[lo:hi],
            self.state[lo:hi],
            self.demand[lo:hi],
            self.fault,
            self.instrument,
        )

    def segment(self, at: int) -> Segment:
        """Segment ``at`` as a single segment."""
        start, end = float(self.start[at]), float(self.end[at])
        demand = float(self.demand[at])
        return Segment(
            start,
            end,
            int(self.state[at]),
            start,
            end,
            demand,
            self.fault,
            self.instrument,
        )


@dataclass(frozen=True)
class Columns:
    """Every segment, column by column. Fault episodes are listed once per piece (a run
    or a single segment) and ``piece`` says which one each segment belongs to."""

    start: FloatArray
    end: FloatArray
    state: IntArray
    state_start: FloatArray
    state_end: FloatArray
    demand: FloatArray
    piece: IntArray
    faults: list[MachineFault | None]
    instruments: list[InstrumentFault | None]

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class StartValues:
    """Every analog channel's value at the start of one segment, in the form the channels
    compose it: ``scale · window_start + offset`` (see ``channels.WINDOW``)."""

    window_start: FloatArray
    scale: FloatArray
    offset: FloatArray

    @property
    def values(self) -> FloatArray:
        values: FloatArray = self.scale * self.window_start + self.offset
        return values


class Segments:
    """A timeline's segments in time order, as single segments and runs.

    Segments are numbered from the first the timeline made (``ordinal``), whatever has
    been dropped since. ``carried`` holds the channels' values at the start of one
    segment, left there at the end of a block: the next block carries on from it, so the
    segments before it can be dropped.
    """

    def __init__(self) -> None:
        self._pieces: list[Segment | Run] = []
        self._count = 0
        self._first_ordinal = 0
        self.carried: tuple[int, StartValues] | None = None

    def __len__(self) -> int:
        return self._count

    def ordinal(self, index: int) -> int:
        """The number of segment ``index`` since the timeline began."""
        return self._first_ordinal + index

    def append(self, segment: Segment) -> None:
        self._pieces.append(segment)
        self._count += 1

    def add_run(self, run: Run) -> None:
        if len(run):
            self._pieces.append(run)
            self._count += len(run)

    def copy(self) -> Segments:
        """An independent copy (arrays are shared: nothing writes them in place)."""
        other = Segments()
        other._pieces = [copy.copy(piece) for piece in self._pieces]
        other._count, other._first_ordinal = self._count, self._first_ordinal
        other.carried = self.carried
        return other

    def last(self) -> Segment:
        """The last segment, as a single segment that may be changed in place."""
        piece = self._pieces[-1]
        if isinstance(piece, Run):
            head, tail = piece.part(0, len(piece) - 1), piece.segment(len(piece) - 1)
            self._pieces[-1:] = [head, tail] if len(head) else [tail]
            return tail
        return piece

    def pop(self) -> None:
        """Remove the last segment."""
        self.last()
        self._pieces.pop()
        self._count -= 1
        if self.carried is not None and self.carried[0] >= self._count:
            self.carried = None

    def drop_before(self, instant: float) -> None:
        """Forget the segments that end at or before ``instant``, keeping the last one."""
        dropped, pieces = 0, self._pieces
        while len(pieces) > 1 or (pieces and isinstance(pieces[0], Run)):
            piece = pieces[0]
            room = self._count - dropped - 1  # the last segment always stays
            if isinstance(piece, Segment):
                if piece.end > instant or room < 1:
                    break
                pieces.pop(0)
                dropped += 1
                continue
            # Ends never decrease: the first to keep is found by bisection.
            gone = min(int(np.searchsorted(piece.end, instant, side="right")), room)
            if gone < len(piece):
                if gone:
                    pieces[0] = piece.part(gone, len(piece))
                    dropped += gone
                break
            pieces.pop(0)
            dropped += gone
        self._count -= dropped
        self._first_ordinal += dropped
        if self.carried is not None:
            at, values = self.carried
            self.carried = (at - dropped, values) if at >= dropped else None

    def columns(self) -> Columns:
        """Every segment's columns (a few array joins: one per run and per stretch of
        single segments)."""
        parts: list[tuple[FloatArray, ...]] = []
        singles: list[Segment] = []
        faults: list[MachineFault | None] = []
        instruments: list[InstrumentFault | None] = []
        pieces: list[IntArray] = []

        def flush() -> None:
            if not singles:
                return
            table = np.array(
                [(s.start, s.end, s.state, s.state_start, s.state_end, s.demand) for s in singles],
                dtype=np.float64,
            ).reshape(len(singles), 6)
            parts.append(tuple(table.T))
            first = len(faults)
            faults.extend(s.fault for s in singles)
            instruments.extend(s.instrument for s in singles)
            pieces.append(np.arange(first, len(faults), dtype=np.int64))
            singles.clear()

        for piece in self._pieces:
            if isinstance(piece, Segment):
                singles.append(piece)
                continue
            flush()
            state = piece.state.astype(np.float64)
            parts.append((piece.start, piece.end, state, piece.start, piece.end, piece.demand))
            pieces.append(np.full(len(piece), len(faults), dtype=np.int64))
            faults.append(piece.fault)
            instruments.append(piece.instrument)
        flush()
        if not parts:
            empty = np.zeros(0)
            return Columns(*(empty,) * 6, np.zeros(0, dtype=np.int64), [], [])  # type: ignore[arg-type]
        start, end, state, state_start, state_end, demand = (
            np.concatenate(column) for column in zip(*parts, strict=True)
        )
        return Columns(
            start,
            end,
            state.astype(np.int64),
            state_start,
            state_end,
            demand,
            np.concatenate(pieces),
            faults,
            instruments,
        )

    def rows(self) -> list[tuple[Any, ...]]:
        """Every segment as a tuple of its fields (for tests and debugging)."""
        out: list[tuple[Any, ...]] = []
        for piece in self._pieces:
            if isinstance(piece, Segment):
                segments = [piece]
            else:
                segments = [piece.segment(at) for at in range(len(piece))]
            out.extend(tuple(getattr(s, name) for name in Segment.__slots__) for s in segments)
        return out


@dataclass(frozen=True)
class SavedTimeline:
    """A timeline's changing state, to go back to."""

    values: dict[str, Any]
    segments: Segments
    operator: dict[str, Any]
    streams: dict[str, Mapping[str, Any]]
