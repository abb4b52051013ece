"""Container density: how many sensor containers one host keeps on schedule at 1 reading/s.

For each N, starts N containers of the image with ``fleet/generate_sensors.sh --count N
--db-per-node`` (the repository's config, monitoring and hot reload on, the image's
health check), waits until every one has written a row, then over one minute checks
that every container wrote its 60 rows and that its newest row is less than 5 s old.
Reports per N: containers on schedule, host CPU (with the host's own load measured
just before the fleet started as the baseline), memory and CPU per container from
their cgroups, the time to start the whole fleet, and the time and exit status of
``--down``; and the largest N that held. N = 1 runs first as the one-container baseline.

    python -m bench.containers [--counts 1 25 50 100 200] [--window 60] [--smoke]

Needs Docker and the sensor-simulator image; without them it reports itself skipped.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._common import parser, save
from ._process import ROOT, percentile, rounded

SCRIPT = ROOT / "fleet" / "generate_sensors.sh"
PREFIX = "sfbench_"
LAG_LIMIT_S = 5.0
CGROUP = Path("/sys/fs/cgroup")


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def unavailable(image: str) -> str | None:
    """Why the benchmark cannot run here, or None."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    if _docker("info", timeout=60).returncode != 0:
        return "the Docker engine cannot be reached"
    if _docker("image", "inspect", image, timeout=60).returncode != 0:
        return f"no image {image} (build it with docker/build-image.sh)"
    return None


def host_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the host since boot, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _cgroup_file(container_id: str, controller: str, name: str) -> Path | None:
    """A cgroup file of a container: cgroup v1 (cgroupfs driver) or v2 layouts."""
    for path in (
        CGROUP / controller / "docker" / container_id / name,
        CGROUP / controller / "system.slice" / f"docker-{container_id}.scope" / name,
        CGROUP / "system.slice" / f"docker-{container_id}.scope" / name,
        CGROUP / "docker" / container_id / name,
    ):
        if path.exists():
            return path
    return None


def container_cpu_seconds(container_id: str) -> float | None:
    """CPU time used by everything in the container so far (health checks included)."""
    v1 = _cgroup_file(container_id, "cpuacct", "cpuacct.usage")
    if v1 is not None:
        return int(v1.read_text()) / 1e9
    v2 = _cgroup_file(container_id, "", "cpu.stat")
    if v2 is not None:
        stats = dict(line.split() for line in v2.read_text().splitlines())
        return int(stats["usage_usec"]) / 1e6
    return None


def container_memory_mib(container_id: str) -> tuple[float, float] | None:
    """(anonymous memory, usage without reclaimable file cache) in MiB, like `docker stats`."""
    stat = _cgroup_file(container_id, "memory", "memory.stat")
    if stat is None:
        return None
    stats = {k: int(v) for k, v in (line.split() for line in stat.read_text().splitlines())}
    if "total_rss" in stats:  # v1
        usage_file = _cgroup_file(container_id, "memory", "memory.usage_in_bytes")
        usage = int(usage_file.read_text()) if usage_file else 0
        anon, inactive = stats["total_rss"], stats.get("total_inactive_file", 0)
    else:  # v2
        usage_file = _cgroup_file(container_id, "", "memory.current")
        usage = int(usage_file.read_text()) if usage_file else 0
        anon, inactive = stats["anon"], stats.get("inactive_file", 0)
    return anon / 2**20, (usage - inactive) / 2**20


def fleet_ids() -> list[str]:
    found = _docker("ps", "-q", "--no-trunc", "--filter", f"label=sensorfleet.fleet={PREFIX}")
    return found.stdout.split()


def running_count() -> int:
    found = _docker("ps", "-q", "--filter", f"label=sensorfleet.fleet={PREFIX}")
    return len(found.stdout.split())


def fail_if_one_exited() -> None:
    """A node that exited while the fleet starts will not come back: stop with its reason."""
    found = _docker(
        "ps", "-aq", "--filter", f"label=sensorfleet.fleet={PREFIX}", "--filter", "status=exited"
    ).stdout.split()
    if found:
        logs = _docker("logs", "--tail", "5", found[0], timeout=60)
        raise SystemExit(
            f"containers: {len(found)} exited while starting (is the image built from these "
            f"sources? docker/build-image.sh):\n{(logs.stdout + logs.stderr)[-2000:]}"
        )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows_between(db: Path, start: float, end: float) -> tuple[int, float | None]:
    """(rows with a timestamp in [start, end), seconds the newest row trails now)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            count, newest = conn.execute(
                "SELECT SUM(timestamp >= ? AND timestamp < ?), "
                "(julianday('now') - julianday(MAX(timestamp))) * 86400 FROM sensor_readings",
                (_iso(start), _iso(end)),
            ).fetchone()
        conn.close()
    except sqlite3.Error:
        return 0, None
    return int(count or 0), None if newest is None else float(newest)


def databases(data: Path) -> list[Path]:
    return sorted(data.glob("sensor_*.db"))


def run_fleet(n: int, window: int, image: str, network: str, parallel: int) -> dict[str, Any]:
    """Start N containers, measure one window, take them down; the figures of this N."""
    work = Path(tempfile.mkdtemp(prefix="sfbench-"))
    data, identities = work / "data", work / "identities"
    config = work / "config.yaml"
    shutil.copy(ROOT / "config.yaml", config)
    base = [str(SCRIPT), "--prefix", PREFIX, "--image", image, "--config", str(config),
            "--data-dir", str(data), "--identities-dir", str(identities)]  # fmt: skip
    try:
        # The host's own load (other work on a shared machine) just before, as the baseline.
        busy0, total0 = host_cpu()
        time.sleep(10)
        busy1, total1 = host_cpu()
        idle_cores = (busy1 - busy0) / ((total1 - total0) / (os.cpu_count() or 1))
        load_before = os.getloadavg()[0]

        started = time.monotonic()
        up = subprocess.run(
            [*base, "--count", str(n), "--seed", "7", "--db-per-node", "--run-time", "0",
             "--network", network, "--parallel", str(parallel)],
            capture_output=True, text=True, timeout=1800, check=False, cwd=ROOT,
        )  # fmt: skip
        script_s = time.monotonic() - started
        if up.returncode != 0:
            raise SystemExit(f"containers: starting {n} failed:\n{up.stderr[-3000:]}")
        while running_count() < n and time.monotonic() - started < 900:
            fail_if_one_exited()
            time.sleep(1)
        all_running_s = time.monotonic() - started
        while time.monotonic() - started < 900:
            dbs = databases(data)
            if len(dbs) >= n and all(rows_between(db, 0, time.time())[0] > 0 for db in dbs):
                break
            fail_if_one_exited()
            time.sleep(2)
        all_writing_s = time.monotonic() - started

        time.sleep(5)  # settle: the last starts' imports are done
        ids = fleet_ids()
        t0 = float(int(time.time()) + 1)
        time.sleep(max(0.0, t0 - time.time()))
        cpu0 = {i: container_cpu_seconds(i) for i in ids}
        busy0, total0 = host_cpu()
        memory: dict[str, list[tuple[float, float]]] = {i: [] for i in ids}
        lags: list[float] = []
        while time.time() < t0 + window:
            for i in ids:
                sample = container_memory_mib(i)
                if sample is not None:
                    memory[i].append(sample)
            for db in databases(data):
                lag = rows_between(db, 0, 0)[1]
                if lag is not None:
                    lags.append(lag)
            time.sleep(max(0.0, min(10.0, t0 + window - time.time())))
        busy1, total1 = host_cpu()
        cpu1 = {i: container_cpu_seconds(i) for i in ids}
        time.sleep(3)  # the window's last rows are flushed (1 s interval)
        checked = [rows_between(db, t0, t0 + window) for db in databases(data)]
        on_schedule = sum(
            1 for rows, lag in checked if rows == window and lag is not None and lag < LAG_LIMIT_S
        )
        end_lags = [lag for _, lag in checked if lag is not None]
        load_after = os.getloadavg()[0]
        # Hot reload falls back to polling when the host's inotify instances per user
        # (fs.inotify.max_user_instances, often 128) are used up by the other nodes.
        polling_only = sum(
            "file events unavailable" in (logs.stdout + logs.stderr)
            for logs in (_docker("logs", i, timeout=60) for i in ids)
        )

        started = time.monotonic()
        down = subprocess.run(
            [*base, "--down"], capture_output=True, text=True, timeout=1800, check=False
        )
        down_s = time.monotonic() - started
    finally:
        leftover = _docker("ps", "-aq", "--filter", f"label=sensorfleet.fleet={PREFIX}")
        if leftover.stdout.split():
            _docker("rm", "-f", *leftover.stdout.split())
        shutil.rmtree(work, ignore_errors=True)

    cores = os.cpu_count() or 1
    per_cpu = [
        (cpu1[i] or 0.0) - (cpu0[i] or 0.0)
        for i in ids
        if cpu0.get(i) is not None and cpu1.get(i) is not None
    ]
    anon = [max(s[0] for s in samples) for samples in memory.values() if samples]
    used = [max(s[1] for s in samples) for samples in memory.values() if samples]
    host_cores = (busy1 - busy0) / ((total1 - total0) / cores)
    return {
        "containers": n,
        "containers_on_schedule": on_schedule,
        "held": on_schedule == n and down.returncode == 0,
        "rows_expected_each": window,
        "rows_min": min((r for r, _ in checked), default=0),
        "rows_max": max((r for r, _ in checked), default=0),
        "newest_row_lag_end_max_s": rounded(max(end_lags, default=None)),
        "newest_row_lag_p95_s": rounded(percentile(lags, 0.95)),
        "newest_row_lag_max_s": rounded(max(lags, default=None)),
        "start_script_s": round(script_s, 1),
        "start_all_running_s": round(all_running_s, 1),
        "start_all_writing_s": round(all_writing_s, 1),
        "host_cpu_cores_busy": round(host_cores, 2),
        "host_cpu_cores_busy_before_fleet": round(idle_cores, 2),
        "host_cpu_cores_for_fleet": round(host_cores - idle_cores, 2),
        "cpu_pct_per_container_mean": rounded(
            100 * sum(per_cpu) / len(per_cpu) / window if per_cpu else None, 2
        ),
        "cpu_pct_per_container_max": rounded(100 * max(per_cpu) / window if per_cpu else None, 2),
        "memory_mib_per_container_mean": rounded(sum(used) / len(used) if used else None, 1),
        "memory_mib_per_container_max": rounded(max(used, default=None), 1),
        "anon_mib_per_container_mean": rounded(sum(anon) / len(anon) if anon else None, 1),
        "reload_polling_only": polling_only,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(load_after, 2),
        "down_s": round(down_s, 1),
        "down_exit_status": down.returncode,
        "down_output": (down.stdout + down.stderr).strip().splitlines()[-3:],
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--counts", type=int, nargs="+", default=[1, 25, 50, 100, 200])
    args.add_argument("--window", type=int, default=60, help="seconds of the checked window")
    args.add_argument("--image", default="sensor-simulator")
    args.add_argument("--network", default="none", help="network of each node (none)")
    args.add_argument("--parallel", type=int, default=8, help="docker run at once (8)")
    options = args.parse_args()
    counts, window = ([2], 10) if options.smoke else (options.counts, options.window)
    reason = unavailable(options.image)
    if reason is not None:
        path = save("containers", {"skipped": reason}, options.out)
        print(f"containers: skipped: {reason}  → {path}")
        return
    fleets: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "image": options.image,
        "network": options.network,
        "parallel": options.parallel,
        "window_seconds": window,
        "readings_per_second_each": 1,
        "lag_limit_s": LAG_LIMIT_S,
        "cpu_cores_available": os.cpu_count(),
        "largest_n_held": 0,
        "target_n": 200,
        "fleets": fleets,
    }
    for n in counts:
        fleet = run_fleet(n, window, options.image, options.network, options.parallel)
        fleets.append(fleet)
        # Written after every N, so an interrupted run keeps what it measured.
        result["largest_n_held"] = max((f["containers"] for f in fleets if f["held"]), default=0)
        path = save("containers", result, options.out)
        print(
            f"containers: N={n}: {fleet['containers_on_schedule']}/{n} on schedule, "
            f"host {fleet['host_cpu_cores_busy']} cores busy "
            f"({fleet['host_cpu_cores_busy_before_fleet']} before), "
            f"{fleet['memory_mib_per_container_mean']} MiB and "
            f"{fleet['cpu_pct_per_container_mean']}% CPU per container, "
            f"all writing after {fleet['start_all_writing_s']} s, "
            f"down {fleet['down_s']} s (exit {fleet['down_exit_status']})",
            flush=True,
        )
    print(f"containers: largest N that held: {result['largest_n_held']}  → {path}")


if __name__ == "__main__":
    main()
