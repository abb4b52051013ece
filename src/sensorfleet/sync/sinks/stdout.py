"""``-``: JSON lines on standard output, one reading per line (logs stay on stderr).

For ``| jq``, ``| kcat -P -t topic``, or anything else that reads lines. A batch
is written straight to the file descriptor (no Python buffering). When standard
output is a pipe, the batch counts as acknowledged once the reader has read
every byte of it (the pipe holds nothing unread); a regular file once the
bytes are fsynced; a terminal or socket once the kernel took every byte.

Into a pipe, lines go out whole, at most ``PIPE_BUF`` bytes per write and only
when ``poll`` says the pipe has room, so a stalled reader never leaves sync
stuck inside ``write()``. ``interrupt()`` (safe from a signal handler) gives
a reader that is still reading a short grace, then ends the write between two
lines. Whenever a batch ends early (the reader closed the pipe, or sync was
told to stop), only the lines the reader actually read are reported as
written: lines still in the pipe buffer were never read, so they are not marked.
"""

from __future__ import annotations

import array
import bisect
import fcntl
import itertools
import os
import select
import stat
import termios
import time

from ...node.clock import Wake
from .base import Batch, SinkClosedError, SinkError, SinkInterruptedError

_CHUNK = 1 << 20
# After interrupt(): how long a reader that is still reading gets to take the batch.
GRACE_SECONDS = 1.0
# Waiting for a reader to empty the pipe: first and longest pause between looks.
_DRAIN_FIRST, _DRAIN_LONGEST = 0.0005, 0.02


class StdoutSink:
    """Readings as JSON lines on a file descriptor (1, standard output)."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._regular = False
        self._pipe = False
        self._interrupted = Wake()  # set from signal handlers too: see Wake
        self._grace_ends: float | None = None

    @property
    def name(self) -> str:
        return "stdout"

    def open(self) -> None:
        try:
            mode = os.fstat(self.fd).st_mode
        except OSError as exc:
            raise SinkError(f"{self.name}: {exc.strerror}") from None
        self._regular, self._pipe = stat.S_ISREG(mode), stat.S_ISFIFO(mode)

    def interrupt(self) -> None:
        """Stop waiting for the reader: end the batch in flight after a short grace."""
        self._interrupted.set()

    def write(self, batch: Batch) -> None:
        lines = [(line + "\n").encode() for line in batch.json_lines()]
        data = b"".join(lines)
        ends = list(itertools.accumulate(len(line) for line in lines))
        if self._regular:
            self._write_file(data)
            return
        done = 0
        view = memoryview(data)
        try:
            while done < len(data):
                self._wait_for_room(ends, done)
                done += os.write(self.fd, view[done : _next_stop(ends, done)])
            if self._pipe:
                self._wait_until_read(ends, done)
        except BrokenPipeError:
            raise SinkClosedError(
                f"{self.name}: the reader closed the pipe", self._lines_read(ends, done)
            ) from None
        except OSError as exc:
            raise SinkError(f"{self.name}: write: {exc.strerror}") from None

    def _write_file(self, data: bytes) -> None:
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done : done + _CHUNK])
            os.fsync(self.fd)
        except OSError as exc:
            raise SinkError(f"{self.name}: write: {exc.strerror}") from None

    def _wait_for_room(self, ends: list[int], done: int) -> None:
        """Return once a write of up to ``PIPE_BUF`` bytes would not block (or would fail)."""
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        if self._grace_ends is None:
            poller.register(self._interrupted.fileno(), select.POLLIN)
        while True:
            timeout = None
            if self._grace_ends is not None:
                timeout = max(0.0, self._grace_ends - time.monotonic()) * 1000
            ready = {descriptor for descriptor, _ in poller.poll(timeout)}
            if self._grace_ends is None and self._interrupted.fileno() in ready:
                # Told to stop: from now on the reader has the grace to take the batch.
                self._grace_ends = time.monotonic() + GRACE_SECONDS
                poller.unregister(self._interrupted.fileno())
            if self._grace_ends is not None and time.monotonic() >= self._grace_ends:
                self._stopped(ends, done)
            if self.fd in ready:
                return

    def _wait_until_read(self, ends: list[int], done: int) -> None:
        """Return once the reader has read everything in the pipe (or raise: closed, stopped)."""
        pause = _DRAIN_FIRST
        while self._unread() > 0:
            if _reader_gone(self.fd):
                raise BrokenPipeError
            if self._grace_ends is None:
                if self._interrupted.wait(pause):
                    self._grace_ends = time.monotonic() + GRACE_SECONDS
            elif time.monotonic() >= self._grace_ends:
                self._stopped(ends, done)
            else:
                time.sleep(pause)
            pause = min(pause * 2, _DRAIN_LONGEST)

    def _stopped(self, ends: list[int], done: int) -> None:
        read = self._lines_read(ends, done)
        raise SinkInterruptedError(
            f"{self.name}: stopped while the reader was not reading "
            f"({len(ends) - read} of {len(ends)} lines of the batch unread)",
            read,
        )

    def _unread(self) -> int:
        """Bytes in the pipe that no reader has read yet (0 for anything but a pipe)."""
        if not self._pipe:
            return 0
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, count)
        except OSError:
            return 0
        return count[0]

    def _lines_read(self, ends: list[int], done: int) -> int:
        """Whole lines of this batch the reader took: written, and no longer in the pipe."""
        # The pipe held none of this sink's bytes when the batch began (each batch
        # waits until it is read), so what is unread now is the tail of this batch.
        return bisect.bisect_right(ends, max(0, done - self._unread()))

    def close(self) -> None:
        """Standard output stays open for the process; nothing to release."""


def _next_stop(ends: list[int], done: int) -> int:
    """Where the next write ends: the last line end within ``PIPE_BUF`` bytes, so each
    write is whole lines that a pipe with room takes at once; a longer line in pieces."""
    limit = done + select.PIPE_BUF
    at = bisect.bisect_right(ends, limit) - 1
    return ends[at] if at >= 0 and ends[at] > done else min(limit, ends[-1])


def _reader_gone(fd: int) -> bool:
    """True once no process has the pipe open for reading (poll reports an error)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))
