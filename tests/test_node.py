"""The node loop in-process, on a controlled clock."""

from __future__ import annotations

import os
import resource
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sensorfleet.node.clock import ManualClock, Wake
from sensorfleet.node.config import build_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors

START = 1_800_000_000.0


class StallingClock(ManualClock):
    """A clock whose process 'freezes' once: the next look at the time is 30 s later."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.stalled = False

    def now(self) -> float:
        if not self.stalled and self.current > START + 2:
            self.stalled = True
            self.current += 30
        return self.current

    def wait_until(self, instant: float, stop: Wake) -> bool:
        return super().wait_until(instant, stop)


def test_catching_up_after_a_stall_drops_nothing(tmp_path: Path) -> None:
    """After a 30 s stall, 3,000 overdue readings are written in batches, none dropped."""
    config = build_config(
        {
            "simulation": {"readings_per_second": 100},
            "database": {
                "path": str(tmp_path / "n.db"),
                "batch_size": 200,
                "max_buffered_rows": 500,
            },
        },
        "test",
    )
    sensors = build_sensors(config, [(None, build_identity(DEFAULT_IDENTITY, "t", {}))], 1, START)
    loop = NodeLoop(config, sensors, StallingClock(START))
    loop.live(START + 40)
    summary = loop.close()
    assert summary.rows_dropped == 0
    assert summary.rows_written == 4000
    with sqlite3.connect(tmp_path / "n.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0] == 4000


# Signals land at random moments while the loop clears and waits on its wake-up; the handler
# stops the loop as the node's SIGTERM handler does. A lock-based wake-up (threading.Event)
# deadlocks here within a few thousand signals: the handler waits for a lock its own thread
# holds, and the node never finishes its SIGTERM. A wake-up on queue.SimpleQueue hung in
# about half the runs: CPython 3.11's get(timeout), interrupted near its deadline, can go on
# to wait with a negative timeout, which means forever.
_SIGNALS_DURING_WAITS = """
import random, signal, sys, time
from sensorfleet.node.clock import SystemClock
from sensorfleet.node.config import build_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors

config = build_config({"database": {"path": sys.argv[1]}}, "test")
sensors = build_sensors(config, [(None, build_identity(DEFAULT_IDENTITY, "t", {}))], 1, 0.0)
loop = NodeLoop(config, sensors, SystemClock())
stops = []
signal.signal(signal.SIGALRM, lambda *_: (stops.append(1), loop.stop("SIGALRM")))

# Up to 60,000 signals, or as many as 30 s allow on a busy machine. (No watchdog thread:
# a signal the kernel hands to another thread reaches Python's handler late.)
deadline = time.monotonic() + 30
while len(stops) < 60_000 and time.monotonic() < deadline:
    count = len(stops)
    signal.setitimer(signal.ITIMER_REAL, random.uniform(0.00005, 0.0005))
    while len(stops) == count:
        loop._wake.clear()
        loop.clock.wait_until(loop.clock.now() + 0.0001, loop._wake)
print(len(stops), loop.stop_signal)
"""


def test_a_stop_signal_never_deadlocks_the_loop_wake_up(tmp_path: Path) -> None:
    """Thousands of stop signals at random moments of the loop's clear-and-wait all get
    through (the lock- and queue-based wake-ups both hung)."""
    result = subprocess.run(
        [sys.executable, "-c", _SIGNALS_DURING_WAITS, str(tmp_path / "n.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    count, last_signal = result.stdout.split()
    assert int(count) >= 3000 and last_signal == "SIGALRM"


@contextmanager
def descriptors_open(count: int) -> Iterator[None]:
    """``count`` more open descriptors in this process (the soft limit raised to allow them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    opened: list[int] = []
    try:
        opened.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(count))
        yield
    finally:
        for descriptor in opened:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_wake_up_works_past_descriptor_1023() -> None:
    """A wake-up made after 1,100 descriptors are open (as with hundreds of per-sensor
    files) waits, times out and wakes like any other; select() refused it."""
    with descriptors_open(1100):
        wake = Wake()
        assert wake._read >= 1024  # the case select() cannot watch
        assert not wake.is_set()
        assert not wake.wait(0.01)
        wake.set()
        assert wake.is_set() and wake.wait(5)
        wake.clear()
        assert not wake.is_set()
        threading.Timer(0.05, wake.set).start()
        assert wake.wait(30)
