"""A throwaway Kafka broker for benchmarks: the tansu binary on loopback, in-memory storage.

``scripts/setup.sh --test`` installs tansu; without it the Kafka figures cannot be measured
and the benchmark says so (exit 1) rather than print numbers from nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Broker:
    binary: str
    bootstrap: str

    def create_topic(self, name: str, partitions: int = 3) -> str:
        subprocess.run(
            [self.binary, "topic", "create", name, "--broker", f"tcp://{self.bootstrap}",
             "--partitions", str(partitions)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return name


def tansu() -> str:
    found = shutil.which("tansu")
    cargo = Path.home() / ".cargo" / "bin" / "tansu"
    if found:
        return found
    if cargo.exists():
        return str(cargo)
    raise SystemExit("tansu is not installed (scripts/setup.sh --test builds it)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def broker() -> Iterator[Broker]:
    """Start tansu on a free port; stop it on exit."""
    binary = tansu()
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", address, "--advertised-listener-url", address,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"tansu did not start: {log.read().decode()[-500:]}")
                time.sleep(0.05)
            yield Broker(binary, f"127.0.0.1:{port}")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
