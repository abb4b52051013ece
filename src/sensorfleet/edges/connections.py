"""The monitor's connection slots: how many clients it serves at once, and who makes room.

Each connection the monitor accepts is served on its own thread, so idle clients
(keep-alive connections nobody uses, sockets opened and left silent) would each hold
a thread and its memory: 3,000 of them took a node from 58 to 134 MB. At most
``limit`` connections are open at a time. When a new client arrives with every slot
taken, the connection that has waited longest for its next request is closed to make
room (HTTP lets a server close an idle connection whenever it likes); one in the
middle of a request is never interrupted, so if every slot is busy the newcomer waits
in the listen backlog until one finishes. Idle connections are also closed after the
idle timeout on their own (the handler's socket timeout).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class _Slot:
    idle_since: float | None  # None while a request is being served
    closing: bool = False


class ConnectionSlots:
    """Open connections of one server, each idle or serving a request (thread-safe)."""

    def __init__(self) -> None:
        self._slots: dict[socket.socket, _Slot] = {}
        self._changed = threading.Condition()
        self._stopping = False
        self.closed_for_room = 0  # idle connections closed to let a newcomer in

    def __len__(self) -> int:
        with self._changed:
            return len(self._slots)

    def opened(self, connection: socket.socket) -> None:
        """A connection was accepted; it is idle until its first request line arrives."""
        with self._changed:
            self._slots[connection] = _Slot(time.monotonic())

    def idle(self, connection: socket.socket) -> None:
        """The connection waits for its next request (and may be closed to make room)."""
        with self._changed:
            slot = self._slots.get(connection)
            if slot is not None:
                slot.idle_since = time.monotonic()

    def busy(self, connection: socket.socket) -> bool:
        """A request arrived on the connection; False if it was already being closed."""
        with self._changed:
            slot = self._slots.get(connection)
            if slot is None or slot.closing:
                return False
            slot.idle_since = None
            return True

    def closed(self, connection: socket.socket) -> None:
        """The connection's thread is done with it: its slot is free."""
        with self._changed:
            self._slots.pop(connection, None)
            self._changed.notify_all()

    def make_room(self, limit: int) -> bool:
        """Wait until fewer than ``limit`` connections are open, closing the longest idle
        ones as needed; False if the server stops meanwhile."""
        with self._changed:
            while not self._stopping and len(self._slots) >= limit:
                closing = sum(slot.closing for slot in self._slots.values())
                if len(self._slots) - closing >= limit:
                    self._close_longest_idle()
                self._changed.wait(1.0)  # a closed() notifies; the timeout is only a guard
            return not self._stopping

    def _close_longest_idle(self) -> None:
        idle = [
            (slot.idle_since, connection)
            for connection, slot in self._slots.items()
            if slot.idle_since is not None and not slot.closing
        ]
        if not idle:
            return  # every slot is serving a request: wait for one to finish
        _since, connection = min(idle, key=lambda pair: pair[0])
        self._slots[connection].closing = True
        self.closed_for_room += 1
        # Wakes the thread blocked reading the next request: it sees end of stream. (An
        # OSError: the connection is already gone, its thread on the way out.)
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Release a ``make_room`` that is waiting (the server is stopping)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
