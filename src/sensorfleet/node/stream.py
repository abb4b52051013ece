"""A reading stream's schedule, look-ahead and rewind, whatever it measures.

``ReadingStream`` schedules readings exactly one period apart from an origin,
serves them block by block, reads ahead for live sensors and rewinds to the
served position when something changes the stream "from now". It knows
nothing of channels: a subclass produces the blocks (``_produce``) and copies
and restores the state that producing changes (``_state``/``_restore``). The
classic sensor (``generator.SensorGenerator``) and an equipment model
(``machine.EquipmentGenerator``) are its two kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

import numpy as np

MICROS = 1_000_000
# Live sensors generate this much ahead in one vectorised call (bounded in readings).
LOOKAHEAD_SECONDS = 30.0
MAX_LOOKAHEAD_READINGS = 10_000


class Produced(Protocol):
    """What a stream produces: consecutive readings that can be cut and joined."""

    first_index: int

    def __len__(self) -> int: ...
    def slice(self, start: int, stop: int) -> Self: ...


B = TypeVar("B", bound=Produced)


@dataclass(frozen=True)
class _Snapshot:
    """A stream's state at the start of a look-ahead block (to rewind to)."""

    state: object
    index: int


class ReadingStream(Generic[B]):
    """Serves a sensor's readings on an absolute schedule, block by block.

    Live sensors read ahead: ``lookahead`` readings are produced in one
    vectorised call and served as they fall due, which makes a 1 reading/s
    sensor about as cheap as a fast one. Anything that changes the stream
    from "now" (new settings, a forced or ended episode) first rewinds to the
    look-ahead's start and replays what was already served; because the
    stream does not depend on block sizes, the replay is exact.
    """

    def __init__(self, start_epoch: float) -> None:
        self.next_index = 0  # next reading to serve
        self._origin_index = 0
        self._origin_us = round(start_epoch * MICROS)
        self._produced = 0  # next reading to produce (ahead of next_index when reading ahead)
        self._ahead: B | None = None
        self._ahead_snapshot: _Snapshot | None = None
        # Look-aheads end where (index + stagger) is a multiple of ``lookahead``: sensors
        # of one process given different staggers read ahead on different ticks, instead
        # of all of them in the same tick every ``lookahead`` readings.
        self.stagger = 0

    # ---- what a kind of stream provides ---------------------------------------------------
    @property
    def readings_per_second(self) -> float:
        raise NotImplementedError

    @property
    def _period_us(self) -> float:
        """Microseconds between two readings."""
        raise NotImplementedError

    def _produce(self, count: int) -> B:
        """Readings ``_produced`` … ``_produced + count``; advances ``_produced``."""
        raise NotImplementedError

    def _state(self) -> object:
        """A copy of everything ``_produce`` changes."""
        raise NotImplementedError

    def _restore(self, state: object) -> None:
        raise NotImplementedError

    def _concat(self, parts: list[B]) -> B:
        raise NotImplementedError

    @property
    def lookahead(self) -> int:
        """Readings produced per call when serving a few at a time."""
        wanted = round(LOOKAHEAD_SECONDS * self.readings_per_second)
        return max(1, min(MAX_LOOKAHEAD_READINGS, wanted))

    # ---- schedule (scalar arithmetic: these run for every sensor on every tick) -------
    def _time_us(self, index: int) -> int:
        period_us = self._period_us
        # Python's round() and numpy's rint both round half to even: same instants.
        return self._origin_us + round((index - self._origin_index) * period_us)

    def time_of(self, index: int) -> float:
        """Scheduled epoch seconds of reading ``index``."""
        return self._time_us(index) / MICROS

    def _times_us(self, first: int, count: int) -> np.ndarray:
        steps = np.arange(
            first - self._origin_index, first - self._origin_index + count, dtype=np.float64
        )
        period_us = self._period_us
        return self._origin_us + np.rint(steps * period_us).astype(np.int64)

    def index_after(self, epoch: float) -> int:
        """Index of the first reading scheduled strictly after ``epoch``."""
        target = round(epoch * MICROS)
        # A live sensor asks every tick, with its next reading due and the one after not:
        # two instants answer that, without the search below.
        following = self.next_index + 1
        if self._time_us(self.next_index) <= target < self._time_us(following):
            return following
        return self._first_index_where(target, inclusive=True)

    def index_before(self, epoch: float) -> int:
        """Index of the first reading scheduled at or after ``epoch`` (exclusive bound)."""
        return self._first_index_where(round(epoch * MICROS), inclusive=False)

    def _first_index_where(self, target: int, inclusive: bool) -> int:
        period_us = self._period_us
        # The arithmetic answer, then at most a step either way for rounding.
        guess = self._origin_index + max(0, int((target - self._origin_us) // period_us) + 1)

        def past(index: int) -> bool:
            scheduled = self._time_us(index)
            return scheduled > target if inclusive else scheduled >= target

        while not past(guess):
            guess += 1
        while guess > self._origin_index and past(guess - 1):
            guess -= 1
        return guess

    def _rebase(self) -> None:
        """Make the next reading the schedule's origin (before its period changes)."""
        self._origin_us = self._time_us(self.next_index)
        self._origin_index = self.next_index

    def readings_in(self, seconds: float) -> int:
        """How many readings ``seconds`` hold at the current rate (at least one)."""
        return max(1, round(seconds * self.readings_per_second))

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(self._state(), self._produced)

    def _rewind(self) -> None:
        """Drop readings produced ahead but not served, leaving the state at ``next_index``."""
        if self._ahead is None or self._produced == self.next_index:
            self._ahead = None
            return
        snapshot = self._ahead_snapshot
        assert snapshot is not None
        self._restore(snapshot.state)
        self._produced = snapshot.index
        served = self.next_index - snapshot.index
        self._ahead = None
        if served:
            self._produce(served)  # identical to what was served: the stream is block-invariant

    # ---- producing ----------------------------------------------------------------------
    def generate(self, count: int) -> B:
        """The next ``count`` readings."""
        if self._ahead is None and count >= self.lookahead:
            block = self._produce(count)  # large requests (backfill) need no look-ahead
            self.next_index = self._produced
            return block
        parts = []
        while count > 0:
            if self._ahead is None or self._produced == self.next_index:
                self._ahead_snapshot = self._snapshot()
                lookahead = self.lookahead
                to_boundary = lookahead - (self._produced + self.stagger) % lookahead
                self._ahead = self._produce(max(count, to_boundary))
            offset = self.next_index - self._ahead.first_index
            take = min(count, self._produced - self.next_index)  # the look-ahead ends there
            parts.append(self._ahead.slice(offset, offset + take))
            self.next_index += take
            count -= take
        return parts[0] if len(parts) == 1 else self._concat(parts)
