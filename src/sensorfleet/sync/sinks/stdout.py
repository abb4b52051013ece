"""``-``: JSON lines on standard output, one reading per line (logs stay on stderr).

For ``| jq``, ``| kcat -P -t topic``, or anything else that reads lines. A batch
is written straight to the file descriptor (no Python buffering) and counts as
acknowledged once the kernel took every byte (and, when standard output is a
regular file, once it is fsynced). A reader that closes the pipe ends sync
cleanly: the rows whose whole line was written are marked, the rest are not.
"""

from __future__ import annotations

import os
import stat

from .base import Batch, SinkClosedError, SinkError

_CHUNK = 1 << 20


class StdoutSink:
    """Readings as JSON lines on a file descriptor (1, standard output)."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._regular = False

    @property
    def name(self) -> str:
        return "stdout"

    def open(self) -> None:
        try:
            self._regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError as exc:
            raise SinkError(f"{self.name}: {exc.strerror}") from None

    def write(self, batch: Batch) -> None:
        data = "".join(line + "\n" for line in batch.json_lines()).encode()
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done : done + _CHUNK])
            if self._regular:
                os.fsync(self.fd)
        except BrokenPipeError:
            written = data.count(b"\n", 0, done)
            raise SinkClosedError(f"{self.name}: the reader closed the pipe", written) from None
        except OSError as exc:
            raise SinkError(f"{self.name}: write: {exc.strerror}") from None

    def close(self) -> None:
        """Standard output stays open for the process; nothing to release."""
