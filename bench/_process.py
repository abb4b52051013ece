"""Run a real node subprocess and measure it: peak memory, CPU, and how late rows land."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.py"


# Started by a small interpreter that waits for the command and writes the
# command's rusage to a file. ``wait4`` on a direct child of a large process is
# no measure of the child: Linux carries the memory high-water mark of the
# address space a child replaces at exec (with vfork, the parent's own peak)
# into the child's ru_maxrss, so a test process that once held 280 MiB sees
# every child it starts "peak" at 280 MiB. The launcher stays under 15 MiB,
# below any interpreter that imports the project.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{status} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
"""


@dataclass(frozen=True)
class Usage:
    """How a measured command ended and what it used."""

    exit_status: int  # as Popen.returncode: negative for a signal
    peak_rss_kib: int
    cpu_seconds: float


class MeasuredChild:
    """``argv`` as a subprocess whose own peak memory and CPU are read when it ends."""

    def __init__(self, argv: list[str], **popen: Any) -> None:
        handle, name = tempfile.mkstemp(prefix="rusage-", suffix=".txt")
        os.close(handle)
        self._report = Path(name)
        self.argv = argv
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, name, *argv], **popen
        )

    def wait(self) -> Usage:
        launcher = self.process.wait()
        try:
            report = self._report.read_text().split()
        finally:
            self._report.unlink()
        if launcher != 0 or len(report) != 3:
            raise RuntimeError(f"could not start {self.argv} (status {launcher})")
        status, peak, cpu = report
        return Usage(os.waitstatus_to_exitcode(int(status)), int(peak), float(cpu))


def run_measured(argv: list[str], **popen: Any) -> Usage:
    """Run ``argv`` to completion; its exit status, own peak RSS and CPU time."""
    return MeasuredChild(argv, **popen).wait()


@dataclass
class Measured:
    """What one node process did."""

    exit_status: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    lags: list[float] = field(default_factory=list)  # seconds behind, sampled each second
    lag_at: list[float] = field(default_factory=list)  # when each lag was sampled, from start
    stderr: str = ""

    @property
    def cpu_cores(self) -> float:
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def _watch_lag(
    db: Path,
    table: str,
    stop: threading.Event,
    lags: list[float],
    lag_at: list[float],
    started: float,
) -> None:
    """Sample how far the newest row of ``table`` in ``db`` trails the wall clock, and when."""
    while not stop.wait(1.0):
        if not db.exists():
            continue
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                newest = conn.execute(
                    f"SELECT (julianday('now') - julianday(MAX(timestamp))) * 86400 FROM {table}"
                ).fetchone()[0]
        except sqlite3.Error:
            continue
        if newest is not None:
            lags.append(float(newest))
            lag_at.append(time.perf_counter() - started)


def run_node(
    args: list[str],
    cwd: Path,
    watch_db: Path | None = None,
    env: dict[str, str] | None = None,
    watch_table: str = "sensor_readings",
) -> Measured:
    """Run ``main.py ARGS`` to completion; its own peak RSS and CPU (see ``MeasuredChild``),
    sampling the lag of ``watch_table``'s newest row in ``watch_db`` while it runs."""
    environment = {**os.environ, "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1", **(env or {})}
    started = time.perf_counter()
    stderr_path = cwd / "node.stderr"
    with stderr_path.open("w") as stderr:
        child = MeasuredChild(
            [sys.executable, str(MAIN), *args],
            cwd=cwd,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stop, lags, lag_at = threading.Event(), list[float](), list[float]()
        watcher = None
        if watch_db is not None:
            watcher = threading.Thread(
                target=_watch_lag,
                args=(watch_db, watch_table, stop, lags, lag_at, started),
                daemon=True,
            )
            watcher.start()
        usage = child.wait()
        stop.set()
        if watcher is not None:
            watcher.join()
    wall = time.perf_counter() - started
    return Measured(
        exit_status=usage.exit_status,
        wall_seconds=wall,
        cpu_seconds=usage.cpu_seconds,
        peak_rss_mb=usage.peak_rss_kib / 1024,
        lags=lags,
        lag_at=lag_at,
        stderr=stderr_path.read_text(),
    )


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def write_config(path: Path, database: str, extra: str = "") -> Path:
    """A quiet node config for benchmarks (no reload, no HTTP, no log file)."""
    path.write_text(
        "logging: {file: null, format: json}\n"
        "monitoring: {enabled: false}\n"
        "config_reload: {enabled: false}\n"
        f"database: {{path: {database!r}}}\n" + extra
    )
    return path


def baseline_rss_mb(cwd: Path) -> float:
    """Peak RSS of an interpreter that only imports the node (the fixed cost)."""
    usage = run_measured(
        [sys.executable, "-c", "import sensorfleet.cli.run"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    return usage.peak_rss_kib / 1024
