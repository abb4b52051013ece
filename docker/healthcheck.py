"""Container health check: exit 0 when the container's process is doing its job.

Run inside the container (by healthcheck.sh, the image's HEALTHCHECK, for collectors,
and by a Kubernetes liveness probe), so it needs nothing but the standard library. What
it asks depends on the container's command (process 1):

- a node (``sensorfleet run``, the default): ``/healthz`` on ``MONITORING_PORT``
  (8080 by default) must answer 200;
- a collector (``sensorfleet sync … --metrics-port PORT``): its ``/metrics`` must
  answer, and while rows wait to be shipped the sink must have acknowledged a batch
  within the last ``SYNC_HEALTH_STALE_SECONDS`` (120 by default). A collector without
  ``--metrics-port`` has nothing to ask and counts as healthy while it runs.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STALE_SECONDS = 120.0


def fetch(url: str, timeout: float) -> tuple[str | None, str]:
    """``(problem, body)``: problem is None when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            body = response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}: {exc.read(200).decode(errors='replace').strip()}", ""
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} unreachable: {exc}", ""
    return (None if status == 200 else f"{url} answered {status}"), body


def check(url: str, timeout: float) -> str | None:
    """Return None when ``url`` answers 200, otherwise what went wrong."""
    return fetch(url, timeout)[0]


def sync_arguments(argv: list[str]) -> list[str] | None:
    """The arguments after ``sensorfleet sync`` in a command line, or None if not a collector."""
    for i, arg in enumerate(argv[:-1]):
        if Path(arg).name == "sensorfleet" and argv[i + 1] == "sync":
            return argv[i + 2 :]
    return None


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def samples(text: str, metric: str) -> list[float]:
    """Values of every sample of ``metric`` in Prometheus text format."""
    found = []
    for line in text.splitlines():
        if line.startswith(metric) and line[len(metric) : len(metric) + 1] in ("{", " "):
            found.append(float(line.rsplit(" ", 1)[1]))
    return found


def sync_problem(metrics: str, now: float, stale: float) -> str | None:
    """Why a collector with these metrics is unhealthy, or None."""
    backlog = sum(samples(metrics, "sensorfleet_sync_backlog_rows"))
    last = max(samples(metrics, "sensorfleet_sync_last_success_timestamp_seconds"), default=0.0)
    if backlog > 0 and now - last > stale:
        since = "never" if last == 0 else f"{now - last:.0f} s ago"
        return f"{backlog:.0f} rows wait to be shipped; the sink last acknowledged a batch {since}"
    return None


def check_sync(args: list[str]) -> str | None:
    """The problem of the collector run with ``args``, or None."""
    port = option(args, "--metrics-port")
    if port is None or port == "0":
        return None
    host = option(args, "--metrics-host") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    problem, body = fetch(f"http://{host}:{port}/metrics", timeout=4.0)
    if problem is not None:
        return problem
    stale = float(os.environ.get("SYNC_HEALTH_STALE_SECONDS") or STALE_SECONDS)
    return sync_problem(body, time.time(), stale)


def command_line() -> list[str]:
    """Process 1's command line: the container's command after the entrypoint's exec."""
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def main() -> int:
    """Check the node or collector in this container; report the outcome as an exit status."""
    args = sync_arguments(command_line())
    if args is not None:
        problem = check_sync(args)
    else:
        port = os.environ.get("MONITORING_PORT") or "8080"
        problem = check(f"http://127.0.0.1:{port}/healthz", timeout=4.0)
    if problem is not None:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
