"""A node running as a real subprocess: its JSON log read live, its database polled.

Shared by the live-operation tests (reload, faults, monitoring), which all
need to act *while* a node runs and then check what it wrote.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import MAIN, clean_env, write_config, write_identity
from polling import wait_until

Event = dict[str, Any]

# Short waits so an outage shows within a fraction of a second.
QUICK_FAILURES = {"busy_timeout_ms": 100, "retry_attempts": 2}

LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def lock_held_by_another_process(db: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process holding ``BEGIN EXCLUSIVE`` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        if holder.poll() is None and holder.stdin is not None:
            holder.stdin.write("\n")
            holder.stdin.flush()
        holder.wait(10)


# Quick flushes and a seed, so tests see rows within a fraction of a second.
FAST_DATABASE = {"path": "data.db", "flush_interval_seconds": 0.05, "batch_size": 1000}


class NodeProcess:
    """``python main.py ARGS`` in the background, with its stderr events collected."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, str(MAIN), *args],
            cwd=cwd,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,  # resource limits in fault tests
        )
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                if line.startswith("{"):
                    with contextlib.suppress(json.JSONDecodeError):
                        self.events.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def named(self, event: str) -> list[Event]:
        """Every log event called ``event`` so far."""
        with self._changed:
            return [e for e in self.events if e.get("event") == event]

    def wait_for(
        self,
        event: str,
        where: Callable[[Event], bool] = lambda _e: True,
        timeout: float = 20.0,
        count: int = 1,
    ) -> Event:
        """Block until ``count`` events called ``event`` matched ``where``; return the last."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events if e.get("event") == event and where(e)]
                if len(found) >= count:
                    return found[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no {count}x {event!r} within {timeout} s "
                        f"(exit {self.proc.poll()}); log tail:\n{self._tail()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def _tail(self) -> str:
        return "".join(self.lines[-30:])

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the graceful exit, return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout)
        self._reader.join(5)
        return status

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)

    def wait(self, timeout: float = 60.0) -> int:
        status = self.proc.wait(timeout)
        self._reader.join(5)
        return status

    def summary(self) -> Event:
        found = self.named("run summary")
        assert found, f"no run summary; log tail:\n{self._tail()}"
        return found[-1]

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()


def start_node_of_sensors(folder: Path, sensor_ids: Sequence[str], **sections: Any) -> NodeProcess:
    """A node running one identity per id (files in ``folder/ids``) with ``sections`` as config."""
    write_config(folder / "config.yaml", **sections)
    (folder / "ids").mkdir()
    for sensor_id in sensor_ids:
        write_identity(folder / "ids" / f"{sensor_id.lower()}.json", id=sensor_id)
    return NodeProcess(["--config", "config.yaml", "--identity", "ids"], folder)


def start_node(
    folder: Path,
    config: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    wait_rows: bool = True,
) -> NodeProcess:
    """Write ``config.yaml`` and ``node_identity.json`` into ``folder`` and start a node.

    The config defaults to 50 readings/s, seed 1, quick flushes into
    ``data.db``, no anomalies, reload and monitoring off (tests turn them on).
    """
    sections: dict[str, Any] = {
        "simulation": {"readings_per_second": 50, "seed": 1},
        "anomalies": {"enabled": False},
        "database": dict(FAST_DATABASE),
    }
    for key, value in (config or {}).items():
        base = sections.get(key, {})
        sections[key] = {**base, **value} if isinstance(value, dict) else value
    config_path = write_config(folder / "config.yaml", **sections)
    identity_path = write_identity(folder / "node_identity.json", **(identity or {}))
    node = NodeProcess(
        ["--config", config_path.name, "--identity", identity_path.name, *args],
        folder,
        env,
        preexec_fn,
    )
    if wait_rows:
        node.wait_for("node starting")
        wait_until(lambda: count_rows(folder / "data.db") > 0, what="first rows")
    return node


def count_rows(db: Path) -> int:
    """Rows in ``sensor_readings``; 0 while the file or table does not exist yet."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def rows(db: Path, columns: str = "*", where: str = "1") -> list[tuple[Any, ...]]:
    """Rows of ``sensor_readings`` in id order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(
            f"SELECT {columns} FROM sensor_readings WHERE {where} ORDER BY id"
        ).fetchall()


def micros(timestamp: str) -> int:
    """Epoch microseconds of a row's ISO-8601 timestamp."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1_000_000)


def gaps(timestamps: Sequence[str], period_us: int) -> list[tuple[int, int]]:
    """(position, missing readings) wherever consecutive timestamps are not one period apart."""
    found = []
    values = [micros(t) for t in timestamps]
    for position, (before, after) in enumerate(itertools.pairwise(values), 1):
        step = after - before
        if step != period_us:
            found.append((position, round(step / period_us) - 1))
    return found


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def monitoring_url(node: NodeProcess) -> str:
    """Base URL of the node's HTTP endpoint, from its ``monitoring started`` event."""
    event = node.wait_for("monitoring started")
    return f"http://{event['host']}:{event['port']}"


def http(
    method: str,
    url: str,
    body: object = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns status, headers and body (errors are answers too).

    Requests with a body, and every POST and DELETE, say ``application/json``
    unless ``headers`` give another Content-Type.
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None or method in ("POST", "DELETE"):
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_json(method: str, url: str, body: object = None) -> tuple[int, Any]:
    status, _headers, payload = http(method, url, body)
    return status, json.loads(payload)


__all__ = [
    "FAST_DATABASE",
    "QUICK_FAILURES",
    "NodeProcess",
    "count_rows",
    "gaps",
    "http",
    "http_json",
    "integrity",
    "lock_held_by_another_process",
    "micros",
    "monitoring_url",
    "rows",
    "start_node",
    "start_node_of_sensors",
    "wait_until",
    "write_config",
    "write_identity",
]
