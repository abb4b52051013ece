"""Time for the node: a wall clock for live runs, parsing for durations and instants.

The loop (and the sync collector) takes its clocks as arguments so tests and
backfill can use simulated time; nothing in the core calls ``time.time()``
directly. ``MonotonicClock`` is the same protocol on steady time, for intervals.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import time
import weakref
from datetime import UTC, datetime
from typing import Protocol

from ..errors import InputError


class Wake:
    """A wake-up call for a sleeping loop that a signal handler may raise at any moment.

    Neither ``threading.Event`` nor ``queue.SimpleQueue`` is safe for that.
    ``Event``'s lock is not reentrant: a signal arriving while the loop's own
    thread is inside ``clear()`` or ``wait()`` deadlocks the handler's
    ``set()``. ``SimpleQueue.get(timeout)`` in CPython 3.11 can block for good
    when a signal interrupts it near the end of its timeout (the remaining
    time goes negative, which means "wait forever"). So the wake-up is a byte
    in a pipe: ``os.write`` takes no lock, and ``poll`` retries an
    interrupted wait with the time that is left (PEP 475).

    ``poll``, not ``select``: ``select`` cannot watch a descriptor numbered
    1024 or higher, and a node with one database file per sensor holds three
    descriptors per file, so a few hundred sensors push the pipe past it.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        weakref.finalize(self, _close_pipe, self._read, self._write)

    def set(self) -> None:
        # A full pipe is a wake-up already pending: nothing more to say.
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"!")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def fileno(self) -> int:
        """The descriptor that is readable while the wake-up is set (to poll beside others)."""
        return self._read

    def is_set(self) -> bool:
        return self.wait(0)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if woken (the wake-up stays set)."""
        # A poll object per wait: one shared object refuses a second caller (another
        # thread, or a signal handler that asks is_set) while it is polling.
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        # Milliseconds, rounded up by poll, so a wait never ends before its time.
        return bool(poller.poll(max(0.0, timeout) * 1000))


def _close_pipe(*descriptors: int) -> None:
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            os.close(descriptor)


class Clock(Protocol):
    """Where the node gets 'now' and how it waits."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def wait_until(self, instant: float, stop: Wake) -> bool:
        """Sleep until ``instant``; return False early if ``stop`` is set."""
        ...


class SystemClock:
    """The real clock. Waits are absolute, so a schedule never drifts."""

    def now(self) -> float:
        return time.time()

    def wait_until(self, instant: float, stop: Wake) -> bool:
        remaining = instant - self.now()
        if remaining > 0:
            return not stop.wait(remaining)
        return not stop.is_set()


class MonotonicClock(SystemClock):
    """The real clock in steady seconds from an arbitrary start, never set back or forward.

    For intervals, deadlines and backoffs that must not jump when the wall
    clock is adjusted; its ``now()`` is no date.
    """

    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to; ``wait_until`` jumps straight there."""

    def __init__(self, start: float) -> None:
        self.current = start

    def now(self) -> float:
        return self.current

    def wait_until(self, instant: float, stop: Wake) -> bool:
        if stop.is_set():
            return False
        self.current = max(self.current, instant)
        return True


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``90``, ``90s``, ``2h``, ``7d``, ``1h30m`` or ``1.5h``."""
    cleaned = text.strip().lower().replace(" ", "")
    try:
        value = float(cleaned)
    except ValueError:
        pos, value = 0, 0.0
        for match in _PART.finditer(cleaned):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(cleaned) or not cleaned:
            raise InputError(
                [f"{what}: expected a duration such as 90s, 2h, 7d or 1h30m (got {text!r})"]
            ) from None
    if value != value or math.isinf(value):
        raise InputError([f"{what}: must be a finite duration such as 90s or 7d (got {text!r})"])
    if value <= 0:
        raise InputError([f"{what}: must be greater than 0 (got {text!r})"])
    return value


def parse_instant(text: str, what: str = "--start") -> float:
    """Epoch seconds of an ISO-8601 instant; a naive one is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            [f"{what}: expected an ISO-8601 time such as 2024-01-31T00:00:00Z (got {text!r})"]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# The instants a timestamp column can hold as ISO-8601 text: years 1 to 9999.
FIRST_INSTANT = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC).timestamp()


def check_span(start: float, end: float, what: str) -> None:
    """Raise ``InputError`` unless every reading from ``start`` to ``end`` falls in years 1-9999."""
    if start < FIRST_INSTANT or end > LAST_INSTANT:
        raise InputError(
            [
                f"{what}: readings would fall outside the years 1 to 9999 (from about year "
                f"{_year(start)} to {_year(end)}); choose a shorter duration or another --start"
            ]
        )


def _year(epoch: float) -> str:
    return str(math.floor(1970 + epoch / 31_556_952))


def format_instant(epoch: float) -> str:
    """The project's timestamp format: ISO-8601 UTC with microseconds and a Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
