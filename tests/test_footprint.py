"""What a running node keeps in memory: only the code it needs, loaded when it needs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import MAIN, ROOT, clean_env
from servers import free_port

# Runs main.py as __main__ and writes sys.modules as JSON when the process exits.
MODULES_AT_EXIT = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Code of other commands, or loaded on first use only (Prometheus: on the first scrape).
NOT_LOADED = (
    "prometheus_client",
    "sensorfleet.edges.metrics",
    "sensorfleet.report",
    "sensorfleet.sync",
    "sensorfleet.fleet",
    "sensorfleet.cli.report",
    "sensorfleet.cli.sync",
    "sensorfleet.cli.identities",
    "difflib",
    # The settings are msgspec structs: pydantic (10 MB with its schema builder) is for
    # the equipment catalogue and site files only.
    "pydantic",
    "pydantic_core",
    "sensorfleet.equipment",
    "importlib.metadata",
    # structlog's asyncio and http.client's ssl are deferred until used (sensorfleet._deferred);
    # only the OPC UA face runs an event loop, nothing in a node makes an HTTPS connection.
    "asyncio",
    "_asyncio",
    "ssl",
    "_ssl",
    "sensorfleet.edges.faces.base",
)


def _healthz(port: int, deadline: float) -> int:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                return int(answer.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_running_node_loads_only_what_it_needs(tmp_path: Path) -> None:
    """A node on the shipped config, serving /healthz, never loads other commands or Prometheus."""
    for name in ("config.yaml", "node_identity.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    port = free_port()
    modules_file = tmp_path / "modules.json"
    env = clean_env({"MONITORING_PORT": str(port), "RUN_TIME_SECONDS": "4"})
    with subprocess.Popen(
        [sys.executable, "-c", MODULES_AT_EXIT, str(modules_file), str(MAIN)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as node:
        assert _healthz(port, time.monotonic() + 30) == 200
        _, stderr = node.communicate(timeout=60)
    assert node.returncode == 0, stderr[-2000:]
    modules = set(json.loads(modules_file.read_text()))
    # The edges really ran: monitoring and file watching are on in the shipped config.
    assert {
        "sensorfleet.edges.monitor",
        "sensorfleet.edges.watcher",
        "watchdog.observers",
    } <= modules
    unexpected = [
        m for m in sorted(modules) if any(m == n or m.startswith(f"{n}.") for n in NOT_LOADED)
    ]
    assert unexpected == []


# Runs main.py as __main__ and prints the process's thread count and whether numpy loaded.
THREADS_AT_EXIT = """
import atexit, os, runpy, sys
atexit.register(lambda: print(len(os.listdir("/proc/self/task")), "numpy" in sys.modules))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_numpy_starts_no_blas_threads() -> None:
    """`sensorfleet run` loads numpy without BLAS worker threads, whatever the core count."""
    env = clean_env()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", THREADS_AT_EXIT, str(MAIN), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "1 True"


# In a fresh interpreter: structlog imported with asyncio deferred, then asyncio used.
DEFERRED_ASYNCIO = """
import sys
from sensorfleet._deferred import deferring
with deferring("asyncio"):
    import structlog
loaded_early = "asyncio" in sys.modules
import asyncio
real = structlog.stdlib.asyncio.get_running_loop is asyncio.get_running_loop

async def log_from_a_loop():
    await structlog.get_logger("x").ainfo("from a loop")

asyncio.run(log_from_a_loop())
print(loaded_early, real, sys.modules["asyncio"] is asyncio)
"""


def test_deferred_asyncio_is_the_real_module_once_used() -> None:
    """structlog imported with asyncio deferred loads no asyncio, and its async logging works."""
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED_ASYNCIO],
        env={**clean_env(), "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "from a loop" in done.stdout  # logged through the real event loop
    assert done.stdout.splitlines()[-1].split() == ["False", "True", "True"]
