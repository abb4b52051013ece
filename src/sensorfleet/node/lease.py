"""One live writer per sensor id and database file: leases with a heartbeat.

Two nodes started with the same sensor id on one file would silently write
every reading twice. Each process registers itself as a *holder* in the file
(host, pid, heartbeat) and takes a *lease* per sensor id it writes. A second
process finding a lease whose holder keeps heartbeating refuses to start; a
holder that stopped heartbeating (SIGKILL, ``docker rm -f``) is taken over
once its heartbeat is ``LEASE_TIMEOUT_SECONDS`` old, or at once when it was a
process on this host that no longer exists.

The heartbeat is one ``UPDATE`` of the holder's row, whatever the number of
sensors: it rides along in a flush transaction when one is due, and the node
loop sends a small one for a file that had nothing to flush.
"""

from __future__ import annotations

import os
import shlex
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from ..errors import InputError
from .clock import format_instant
from .store import transaction

log = structlog.get_logger("sensorfleet.lease")

LEASE_TIMEOUT_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
POLL_SECONDS = 0.5

HOLDERS = "sensorfleet_holders"
LEASES = "sensorfleet_leases"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {HOLDERS} (
    holder TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_namespace INTEGER,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS {LEASES} (
    sensor_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL
);
"""


class LeaseConflictError(InputError):
    """Another live node writes the same sensor id into the same file."""


class LeaseLostError(InputError):
    """Another node took over sensor ids this process held (after a stall of this one).

    Raised inside the write transaction, so the rows of that flush are rolled
    back: the node must drop those sensors before it writes again.
    """

    def __init__(self, path: Path, lost: list[tuple[str, str, int]]) -> None:
        self.sensor_ids = [sensor_id for sensor_id, _, _ in lost]
        super().__init__(
            [
                f"{path}: sensor id {sensor_id!r} was taken over by another node (host {host}, "
                f"pid {pid}) while this one was not heartbeating; this node stops writing it"
                for sensor_id, host, pid in lost
            ]
        )


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child not yet reaped is a zombie: gone for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


@dataclass(frozen=True)
class Holder:
    """This process, as written into every database file it holds leases in."""

    holder: str
    host: str
    pid: int
    pid_namespace: int | None

    @classmethod
    def this_process(cls) -> Holder:
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), _pid_namespace())

    def sees_gone(self, host: str, pid: int, pid_namespace: int | None) -> bool:
        """True when ``pid`` is a process of this host's pid namespace that no longer runs."""
        same_space = pid_namespace is not None and pid_namespace == self.pid_namespace
        return host == self.host and same_space and _process_gone(pid)


_PROCESS_HOLDER: Holder | None = None


def process_holder() -> Holder:
    """The one holder identity of this process."""
    global _PROCESS_HOLDER
    if _PROCESS_HOLDER is None or _PROCESS_HOLDER.pid != os.getpid():
        _PROCESS_HOLDER = Holder.this_process()
    return _PROCESS_HOLDER


class FileLease:
    """The leases of one process on one database file."""

    def __init__(
        self,
        path: Path,
        sensor_ids: Iterable[str],
        holder: Holder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.sensor_ids = sorted(set(sensor_ids))
        self.holder = holder or process_holder()
        self.clock = clock
        self.last_heartbeat = 0.0

    # ---- taking the leases ----------------------------------------------------------
    def acquire(self, conn: sqlite3.Connection, patient: bool = True) -> None:
        """Take every lease, waiting out a holder that stopped heartbeating.

        Raises ``LeaseConflictError`` when a holder keeps heartbeating (only when
        ``patient``; a reopen mid-run takes what is free and raises
        ``LeaseLostError`` naming the rest).
        """
        seen: dict[str, float] = {}
        waiting_since = time.monotonic()
        while True:
            blocking = self._try_acquire(conn, take_all=not patient)
            if not blocking:
                return
            for sensor_id, holder, host, pid, heartbeat in blocking:
                if holder in seen and heartbeat == seen[holder]:
                    self._check_not_ahead(sensor_id, host, pid, heartbeat, waiting_since)
                if holder in seen and heartbeat != seen[holder]:
                    raise LeaseConflictError(
                        [
                            f"{self.path}: sensor id {sensor_id!r} is already being written by "
                            f"a live node (host {host}, pid {pid}); give each node its own id "
                            "(SENSOR_ID or the identity file) or its own database.path"
                        ]
                    )
                if holder not in seen:
                    seen[holder] = heartbeat
                    log.info(
                        "sensor lease held, waiting",
                        path=str(self.path),
                        sensor_id=sensor_id,
                        holder_host=host,
                        holder_pid=pid,
                        timeout_s=LEASE_TIMEOUT_SECONDS,
                    )
            time.sleep(POLL_SECONDS)

    def _check_not_ahead(
        self, sensor_id: str, host: str, pid: int, heartbeat: float, waiting_since: float
    ) -> None:
        """Refuse to wait any longer for a silent holder whose heartbeat lies ahead of this
        host's clock: its age cannot pass the timeout until this clock catches up with the
        other host's (an hour of skew, an hour of waiting)."""
        ahead = heartbeat - self.clock()
        if ahead <= 0 or time.monotonic() - waiting_since < LEASE_TIMEOUT_SECONDS:
            return
        remove = f"DELETE FROM {HOLDERS} WHERE host = '{host}' AND pid = {pid}"
        raise LeaseConflictError(
            [
                f"{self.path}: sensor id {sensor_id!r} is leased by host {host}, pid {pid}, "
                f"whose heartbeat {format_instant(heartbeat)} is {ahead:.0f} s ahead of this "
                f"host's clock and did not change for {LEASE_TIMEOUT_SECONDS:.0f} s; the hosts "
                "sharing this file disagree on the time: sync their clocks (NTP), or, if that "
                f"node is gone, remove its lease: sqlite3 {shlex.quote(str(self.path))} "
                f'"{remove}"'
            ]
        )

    def _try_acquire(
        self, conn: sqlite3.Connection, take_all: bool
    ) -> list[tuple[str, str, str, int, float]]:
        now = self.clock()
        me = self.holder
        wanted = set(self.sensor_ids)
        with transaction(conn):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            holders = {
                row[0]: row
                for row in conn.execute(
                    f"SELECT holder, host, pid, pid_namespace, heartbeat FROM {HOLDERS}"
                )
            }
            stale = {
                holder
                for holder, (_, host, pid, space, heartbeat) in holders.items()
                if holder != me.holder
                and (now - heartbeat > LEASE_TIMEOUT_SECONDS or me.sees_gone(host, pid, space))
            }
            blocking = []
            for sensor_id, holder in conn.execute(f"SELECT sensor_id, holder FROM {LEASES}"):
                if sensor_id not in wanted or holder == me.holder:
                    continue
                if holder in holders and holder not in stale:
                    _, host, pid, _, heartbeat = holders[holder]
                    blocking.append((sensor_id, holder, host, pid, heartbeat))
            if blocking and not take_all:
                return blocking
            for holder in stale:
                conn.execute(f"DELETE FROM {HOLDERS} WHERE holder = ?", (holder,))
                conn.execute(f"DELETE FROM {LEASES} WHERE holder = ?", (holder,))
                log.warning(
                    "stale sensor lease taken over",
                    path=str(self.path),
                    holder_host=holders[holder][1],
                    holder_pid=holders[holder][2],
                    heartbeat_age_s=round(now - holders[holder][4], 1),
                )
            conn.execute(
                f"INSERT OR REPLACE INTO {HOLDERS} (holder, host, pid, pid_namespace, heartbeat) "
                "VALUES (?, ?, ?, ?, ?)",
                (me.holder, me.host, me.pid, me.pid_namespace, now),
            )
            taken = {b[0] for b in blocking}
            conn.executemany(
                f"INSERT OR REPLACE INTO {LEASES} (sensor_id, holder) VALUES (?, ?)",
                [(s, me.holder) for s in self.sensor_ids if s not in taken],
            )
        self.last_heartbeat = now
        if blocking:
            # A reopen mid-run found ids that another live node writes now: this node keeps
            # the free ones and must stop writing those (never two writers of one id).
            raise LeaseLostError(self.path, [(b[0], b[2], b[3]) for b in blocking])
        return []

    def change_ids(self, conn: sqlite3.Connection, sensor_ids: Iterable[str]) -> None:
        """Hold exactly ``sensor_ids`` from now on (a live identity edit changed an id).

        New ids are taken as at start, a stale holder's included, but without
        waiting: an id a live node holds raises ``LeaseConflictError`` naming it,
        and nothing changes. Ids no longer written are given back.
        """
        previous, self.sensor_ids = self.sensor_ids, sorted(set(sensor_ids))
        try:
            blocking = self._try_acquire(conn, take_all=False)
            if blocking:
                raise LeaseConflictError(
                    [
                        f"{self.path}: sensor id {sensor_id!r} is already being written by a "
                        f"live node (host {host}, pid {pid}); give this sensor another id"
                        for sensor_id, _, host, pid, _ in blocking
                    ]
                )
            given_back = [s for s in previous if s not in self.sensor_ids]
            with transaction(conn):
                conn.executemany(
                    f"DELETE FROM {LEASES} WHERE sensor_id = ? AND holder = ?",
                    [(s, self.holder.holder) for s in given_back],
                )
        except sqlite3.Error as exc:
            self.sensor_ids = previous
            raise LeaseConflictError(
                [f"{self.path}: cannot check the sensor leases now ({exc}); save the file again"]
            ) from None
        except BaseException:
            self.sensor_ids = previous
            raise

    def drop(self, sensor_ids: Iterable[str]) -> None:
        """Stop claiming these ids (their sensors left this process)."""
        gone = set(sensor_ids)
        self.sensor_ids = [s for s in self.sensor_ids if s not in gone]

    # ---- keeping them ---------------------------------------------------------------
    def due(self) -> bool:
        return self.clock() >= self.due_at()

    def due_at(self) -> float:
        return self.last_heartbeat + HEARTBEAT_SECONDS

    def beat(self, conn: sqlite3.Connection) -> None:
        """Refresh the heartbeat; call inside a write transaction (cheap: one row)."""
        now = self.clock()
        updated = conn.execute(
            f"UPDATE {HOLDERS} SET heartbeat = ? WHERE holder = ?", (now, self.holder.holder)
        ).rowcount
        if not updated:
            # Another node judged us dead (a stall past the timeout) and removed our
            # row: register again and keep the leases nobody took meanwhile.
            me = self.holder
            conn.execute(
                f"INSERT INTO {HOLDERS} (holder, host, pid, pid_namespace, heartbeat) "
                "VALUES (?, ?, ?, ?, ?)",
                (me.holder, me.host, me.pid, me.pid_namespace, now),
            )
            conn.executemany(
                f"INSERT OR IGNORE INTO {LEASES} (sensor_id, holder) VALUES (?, ?)",
                [(s, me.holder) for s in self.sensor_ids],
            )
            lost = self._held_by_others(conn)
            if lost:
                # Raised inside the flush: its rows are rolled back with this registration.
                raise LeaseLostError(self.path, lost)
            log.warning(
                "sensor lease renewed after a stall",
                path=str(self.path),
                sensor_ids=self.sensor_ids,
            )
        self.last_heartbeat = now

    def _held_by_others(self, conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
        """(sensor id, host, pid) of this process's ids that another holder leases now."""
        marks = ", ".join("?" * len(self.sensor_ids))
        return [
            (str(sensor_id), str(host), int(pid))
            for sensor_id, host, pid in conn.execute(
                f"SELECT l.sensor_id, coalesce(h.host, '?'), coalesce(h.pid, 0) FROM {LEASES} l "
                f"LEFT JOIN {HOLDERS} h ON h.holder = l.holder "
                f"WHERE l.holder != ? AND l.sensor_id IN ({marks}) ORDER BY l.sensor_id",
                (self.holder.holder, *self.sensor_ids),
            )
        ]

    def release(self, conn: sqlite3.Connection) -> None:
        """Give the leases back (clean exit), so a restart takes them at once."""
        with transaction(conn):
            conn.execute(f"DELETE FROM {LEASES} WHERE holder = ?", (self.holder.holder,))
            conn.execute(f"DELETE FROM {HOLDERS} WHERE holder = ?", (self.holder.holder,))
