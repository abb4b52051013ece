"""Footprint of one live node at 1 reading/s with the default config: memory, CPU, wake-ups.

The node runs the shipped ``config.yaml`` and ``node_identity.json`` (monitoring
and hot reload on, a log file) until stopped. Read from ``/proc`` while it runs:

- RSS once it has started (the monitor is serving: every start-up import is
  done, the database is open);
- CPU % of one core and wake-ups per second (voluntary context switches of all
  its threads) over an idle window of ``--seconds`` after start;
- peak RSS (VmHWM) after that window, and again after one ``/healthz`` probe
  and one ``/metrics`` scrape (the Prometheus code loads on the first scrape).

Beside it, in the same run: the peak RSS of the interpreter alone, of the
interpreter importing numpy (the core's fixed floor), and of the interpreter
importing the node's code (what ``sensorfleet run`` loads before its first
reading). Also, the same node as the image runs it (``IMAGE_ENV``: -OO), with
glibc's malloc arenas capped, and with asyncio loaded as before the node deferred
it (``VARIANTS``). Then where the memory goes: RSS after each import of the node's
in one interpreter (``IMPORT_STEPS``), and the validation libraries side by side,
each validating a one-field model (``LIBRARY_PROBES``).

    python -m bench.footprint [--seconds 60] [--smoke]
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from ._common import parser, save
from ._process import MAIN, ROOT

START_EVENT = '"monitoring started"'  # the last thing a node logs while starting
START_TIMEOUT = 60.0
# The same node as the image starts it (the Dockerfile's ENV): Python with -OO (no
# docstrings or asserts kept in memory) on bytecode compiled for it beforehand, none
# written at run time. ``run`` precompiles it with a short node run first, as the
# image does with ``python -OO -m compileall`` at build time.
IMAGE_ENV: dict[str, str] = {
    "PYTHONOPTIMIZE": "2",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
VARIANTS: dict[str, dict[str, str]] = {
    "image_settings": IMAGE_ENV,
    # glibc's malloc arenas capped (threads otherwise get arenas of their own).
    "malloc_arena_max_2": {"MALLOC_ARENA_MAX": "2"},
    # asyncio imported before the node starts, as structlog did before the node deferred
    # it (sensorfleet._deferred): what that saves. The same for http.client's ssl.
    "with_asyncio": {},
    "with_ssl": {},
    # OpenSSL's hashes refused, so hashlib and hmac use Python's own (measured, not done:
    # the first /metrics scrape loads OpenSSL's libcrypto through ssl all the same).
    "without_openssl_hashes": {},
}
# Code a variant's interpreter runs before it runs the node.
PRELOAD: dict[str, str] = {
    "with_asyncio": "import asyncio",
    "with_ssl": "import ssl",
    "without_openssl_hashes": "sys.modules['_hashlib'] = None",
}

# The node's imports in the order a node meets them, one interpreter, RSS after each.
IMPORT_STEPS: tuple[tuple[str, str], ...] = (
    ("sqlite3", "import sqlite3"),
    ("yaml", "import yaml"),
    ("numpy", "import numpy"),
    ("numpy.random", "import numpy.random"),
    ("msgspec", "import msgspec"),
    (
        "structlog (asyncio deferred)",
        "from sensorfleet._deferred import deferring\nwith deferring('asyncio'): import structlog",
    ),
    ("tenacity", "import tenacity"),
    ("watchdog.observers", "import watchdog.observers"),
    (
        "http.server (ssl deferred)",
        "from sensorfleet._deferred import deferring\nwith deferring('ssl'): import http.server",
    ),
    ("sensorfleet.node.config", "import sensorfleet.node.config"),
    ("the rest of the node's code", "import sensorfleet.cli.run, sensorfleet.run"),
)
_ONE_FIELD = "class One({base}):\n    value: int\n"
# Validation libraries, each in its own interpreter, validating a one-field model.
LIBRARY_PROBES: dict[str, str] = {
    "pydantic": "import pydantic\n"
    + _ONE_FIELD.format(base="pydantic.BaseModel")
    + "One.model_validate({'value': 1})",
    "msgspec": "import msgspec\n"
    + _ONE_FIELD.format(base="msgspec.Struct, forbid_unknown_fields=True")
    + "msgspec.convert({'value': 1}, One)",
    "asyncio": "import asyncio",
    "structlog": "import structlog",
}


def _status(pid: int, task: str | None = None) -> dict[str, str]:
    """``/proc/PID/status`` (or one thread's) as a dict."""
    fields = {}
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    with open(path) as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _mb(value: str) -> float:
    return int(value.split()[0]) / 1024  # "/proc" reports kB


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches(pid: int) -> tuple[int, int, int]:
    """Voluntary and involuntary context switches summed over live threads, and threads."""
    voluntary = involuntary = threads = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            status = _status(pid, task)
        except FileNotFoundError:
            continue  # a thread that just ended
        voluntary += int(status["voluntary_ctxt_switches"])
        involuntary += int(status["nonvoluntary_ctxt_switches"])
        threads += 1
    return voluntary, involuntary, threads


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _collect(stream: IO[str], lines: list[str], started: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        if START_EVENT in line:
            started.set()


def peak_rss_of(code: str) -> float:
    """Peak RSS in MB of ``python -c CODE`` with the project's sources importable.

    The child reads its own VmHWM: ``wait4``'s ``ru_maxrss`` would count the
    parent's memory the child had between fork and exec.
    """
    report = "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out) / 1024


def import_steps() -> list[dict[str, Any]]:
    """RSS after each of ``IMPORT_STEPS`` in one interpreter, and what each added."""
    rss = "open('/proc/self/status').read().split('VmRSS:')[1].split()[0]"
    lines = [f"print('(interpreter)', {rss})"]
    for name, code in IMPORT_STEPS:
        lines += [code, f"print({name!r}, {rss})"]
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    steps: list[dict[str, Any]] = []
    before: float | None = None
    for line in out.splitlines():
        name, _, kb = line.rpartition(" ")
        after = int(kb) / 1024
        added = None if before is None else round(after - before, 1)
        steps.append({"import": name, "adds_mb": added, "rss_after_mb": round(after, 1)})
        before = after
    return steps


def measure_node(
    seconds: float, env: dict[str, str] | None = None, preload: str | None = None
) -> dict[str, Any]:
    """Start a node on the default config, measure it idle, probe it, stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("config.yaml", "node_identity.json"):
            shutil.copy(ROOT / name, work / name)
        port = _free_port()
        environment = {
            **os.environ,
            "LOG_FORMAT": "json",
            "MONITORING_PORT": str(port),
            **(env or {}),
        }
        launch = [str(MAIN)]
        if preload:
            launch = ["-c", _PRELOADED.format(preload), str(MAIN)]
        proc = subprocess.Popen(
            [sys.executable, *launch, "--run-time", "0", "--seed", "1"],
            cwd=work,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        started = threading.Event()
        reader = threading.Thread(target=_collect, args=(proc.stderr, lines, started))
        reader.start()
        try:
            if not started.wait(START_TIMEOUT):
                raise SystemExit("footprint: node did not start:\n" + "".join(lines[-20:]))
            pid = proc.pid
            rss_after_start = _mb(_status(pid)["VmRSS"])
            cpu0, (vol0, invol0, _), t0 = _cpu_seconds(pid), _switches(pid), time.monotonic()
            time.sleep(seconds)
            cpu1, (vol1, invol1, threads), t1 = _cpu_seconds(pid), _switches(pid), time.monotonic()
            idle_status = _status(pid)
            for path in ("/healthz", "/metrics"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                    r.read()
            probed_status = _status(pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            reader.join()
        if proc.returncode != 0:
            raise SystemExit("footprint: node failed:\n" + "".join(lines[-20:]))
        with sqlite3.connect(work / "data" / "sensor_data.db") as conn:
            rows = conn.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0]
    window = t1 - t0
    return {
        "rss_after_start_mb": round(rss_after_start, 1),
        "peak_rss_idle_mb": round(_mb(idle_status["VmHWM"]), 1),
        "peak_rss_mb": round(_mb(probed_status["VmHWM"]), 1),
        # RSS at the end, split: private memory, and pages of the interpreter's and
        # libraries' files (shared with every other node started from the same files).
        "rss_anonymous_mb": round(_mb(probed_status["RssAnon"]), 1),
        "rss_file_backed_mb": round(_mb(probed_status["RssFile"]), 1),
        "threads": threads,
        "window_seconds": round(window, 1),
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / window, 3),
        "wakeups_per_second": round((vol1 - vol0) / window, 2),
        "involuntary_switches_per_second": round((invol1 - invol0) / window, 2),
        "rows_written": rows,
    }


# Runs some code, then main.py (argv[1]) as the node's entry point.
_PRELOADED = (
    "import runpy, sys; {}; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run(seconds: float) -> dict[str, Any]:
    node = measure_node(seconds)
    # Writes the .opt-2.pyc files of every module a node loads (where writable), so the
    # image_settings variant does not measure compiling at start.
    measure_node(1, {"PYTHONOPTIMIZE": "2"})
    variants = {
        name: measure_node(seconds, env, PRELOAD.get(name)) for name, env in VARIANTS.items()
    }
    return {
        "readings_per_second": 1,
        "seconds": seconds,
        "config": "config.yaml as shipped (monitoring and hot reload on)",
        **node,
        "interpreter_rss_mb": round(peak_rss_of("pass"), 1),
        "interpreter_with_numpy_rss_mb": round(peak_rss_of("import numpy, numpy.random"), 1),
        "interpreter_with_imports_rss_mb": round(peak_rss_of("import sensorfleet.cli.run"), 1),
        "target_peak_rss_mb": 40,
        "variants": {
            name: {"env": VARIANTS[name], "preload": PRELOAD.get(name), **result}
            for name, result in variants.items()
        },
        "import_steps": import_steps(),
        "interpreter_with_library_rss_mb": {
            name: round(peak_rss_of(code), 1) for name, code in LIBRARY_PROBES.items()
        },
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--seconds", type=float, default=60)
    options = args.parse_args()
    result = run(3 if options.smoke else options.seconds)
    path = save("footprint", result, options.out)
    variants = ", ".join(
        f"{name} {variant['peak_rss_mb']} MB" for name, variant in result["variants"].items()
    )
    print(
        f"footprint: peak {result['peak_rss_mb']} MB ({variants}), after start "
        f"{result['rss_after_start_mb']} MB; interpreter "
        f"{result['interpreter_rss_mb']} MB, + numpy {result['interpreter_with_numpy_rss_mb']} "
        f"MB, + node imports {result['interpreter_with_imports_rss_mb']} MB; CPU "
        f"{result['cpu_pct_of_one_core']}% of one core, {result['wakeups_per_second']} "
        f"wake-ups/s  → {path}"
    )


if __name__ == "__main__":
    main()
