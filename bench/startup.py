"""Start-up: time from ``docker run`` to a node's first committed row, beside a bare start.

One container, repeated (median), interleaved in each round:

- bare: ``docker run --entrypoint python3 IMAGE -c pass``, until the call returns
  (the container's whole life: create, start, interpreter, exit);
- bare row: a bare ``python3 -c`` that commits one row to a WAL SQLite file on the
  mounted data directory, detected exactly as the node's first row is;
- node: the image as ``fleet/generate_sensors.sh --db-per-node`` runs it (the
  repository's config with monitoring and hot reload, its own identity and database,
  no network), from the ``docker run -d`` call until its database shows a committed
  row; the host polls the bind-mounted file read-only;
- breakdown: the same node run by ``bench/_startup_probe.py`` mounted into the
  container, which stamps when each stage of the start ends (process created,
  interpreter, imports, config and identity, logging, database open, edges, first
  reading, first commit), all against the same ``docker run`` call.

Then a fleet: N containers (200) started by ``fleet/generate_sensors.sh --count N
--db-per-node --network none``, and N bare-row containers started 8 at a time like
the script does: per container, from its creation (``docker inspect .Created``) to
its first row (median, p95, max), and from the first container's creation until
every one has a row.

    python -m bench.startup [--repeats 5] [--fleet 200] [--image sensor-simulator]
                            [--compare EARLIER_IMAGE] [--smoke]

``--compare`` runs an earlier build's node beside the image's in every round, and its
fleet before the image's: before and after a change, in one run.

Needs Docker and the image; without them it reports itself skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from ._common import median, parser, save
from ._process import ROOT, percentile, rounded
from .containers import SCRIPT, unavailable

PROBE = Path(__file__).resolve().parent / "_startup_probe.py"
PREFIX = "sfstartup_"
LABEL = f"sensorfleet.fleet={PREFIX}"
BARE_LABEL = "sensorfleet.bench=startup-bare"
TIMEOUT_S = 900.0
# Stages of the breakdown, in the order a node passes them (see _startup_probe.py).
STAGES: tuple[str, ...] = (
    "process_created",
    "interpreter",
    "imports",
    "config_and_identity",
    "logging",
    "database_open",
    "sensors_built",
    "edges",
    "first_reading",
    "first_commit",
)
# A bare interpreter committing one row as the node does (WAL), then staying up: the
# row stays in the WAL where the poll reads it, as the node's does.
BARE_ROW = (
    "import sqlite3, sys, time\n"
    "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "c.execute('PRAGMA journal_mode = wal')\n"
    "c.execute('CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, value REAL)')\n"
    "c.execute('INSERT INTO sensor_readings (value) VALUES (1.0)')\n"
    "time.sleep(3600)\n"
)


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def has_row(db: Path) -> bool:
    """True once ``db`` holds a committed row in ``sensor_readings``.

    Opened only once its ``-wal`` and ``-shm`` exist: a reader that came first would
    create them as root, and the node, running as another user, could not use them.
    """
    if not (Path(f"{db}-wal").exists() and Path(f"{db}-shm").exists()):
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT 1 FROM sensor_readings LIMIT 1").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def wait_for_rows(dbs: list[Path], pause: float) -> tuple[dict[Path, float], list[float]]:
    """Poll until every database has a row; (wall time each was first seen, sweep lengths)."""
    seen: dict[Path, float] = {}
    sweeps: list[float] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(seen) < len(dbs) and time.monotonic() < deadline:
        began = time.time()
        for db in dbs:
            if db not in seen and has_row(db):
                seen[db] = time.time()
        sweeps.append(time.time() - began)
        time.sleep(pause)
    return seen, sweeps


def _work() -> tuple[Path, Path]:
    work = Path(tempfile.mkdtemp(prefix="sfstartup-"))
    data = work / "data"
    data.mkdir()
    return work, data


def _bare_args(image: str, data: Path, name: str) -> list[str]:
    return ["run", "-d", "--name", name, "--label", BARE_LABEL, "--network", "none",
            "-v", f"{data}:/app/data", "--entrypoint", "python3", image,
            "-c", BARE_ROW, f"/app/data/{name}.db"]  # fmt: skip


def _node_args(image: str, data: Path, name: str, extra: list[str]) -> list[str]:
    """``docker run`` of one node as ``generate_sensors.sh --db-per-node`` runs it."""
    return ["run", "-d", "--name", name, "--label", LABEL, "--network", "none",
            "-v", f"{ROOT / 'config.yaml'}:/app/config.yaml:ro",
            "-v", f"{ROOT / 'node_identity.json'}:/app/node_identity.json:ro",
            "-v", f"{data}:/app/data", "--env", "RUN_TIME_SECONDS=0",
            "--env", f"DATABASE_PATH=/app/data/{name}.db", *extra]  # fmt: skip


def first_row_after(args: list[str], db: Path) -> float:
    """Seconds from the ``docker run -d`` call until ``db`` shows a committed row."""
    started = time.time()
    launch = subprocess.Popen(["docker", *args], stdout=subprocess.DEVNULL)
    seen, _ = wait_for_rows([db], 0.005)
    if launch.wait() != 0 or db not in seen:
        raise SystemExit(f"startup: no row in {db} after `docker {' '.join(args[:4])} …`")
    return seen[db] - started


def bare_pass(image: str) -> float:
    """Seconds of ``docker run --entrypoint python3 IMAGE -c pass``, created to exited."""
    name = f"{PREFIX}bare_pass"
    started = time.time()
    done = _docker("run", "--name", name, "--network", "none", "--entrypoint", "python3",
                   image, "-c", "pass")  # fmt: skip
    elapsed = time.time() - started
    _docker("rm", "-f", name)
    if done.returncode != 0:
        raise SystemExit(f"startup: bare container failed: {done.stderr[-500:]}")
    return elapsed


def breakdown(image: str, importtime: bool = False) -> dict[str, Any]:
    """One node run by the probe: each stage's end, in seconds after the ``docker run``."""
    work, data = _work()
    name = f"{PREFIX}probe"
    env = ["--env", "PYTHONPROFILEIMPORTTIME=1"] if importtime else []
    try:
        started = time.time()
        run = _docker(*_node_args(image, data, name, env),
                      "-v", f"{PROBE}:/probe.py:ro", image, "python", "/probe.py")  # fmt: skip
        if run.returncode != 0:
            raise SystemExit(f"startup: probe container failed to start: {run.stderr[-500:]}")
        _docker("wait", name, timeout=TIMEOUT_S)
        logs = _docker("logs", name)
    finally:
        _docker("rm", "-f", name)
        shutil.rmtree(work, ignore_errors=True)
    line = next((x for x in logs.stdout.splitlines() if x.startswith("startup-probe ")), None)
    if line is None:
        raise SystemExit(f"startup: the probe reported nothing:\n{logs.stderr[-2000:]}")
    report = json.loads(line.split(" ", 1)[1])
    stamps = {"process_created": report["process_started"], **report["stamps"]}
    result: dict[str, Any] = {
        stage: round(stamps[stage] - started, 3) for stage in STAGES if stage in stamps
    }
    if importtime:
        result["imports_by_package_s"] = imports_by_package(logs.stderr)
    return result


def imports_by_package(stderr: str, top: int = 10) -> dict[str, float]:
    """``-X importtime`` self times summed by top-level package, the largest first: the
    imports before the node's first commit."""
    totals: dict[str, float] = {}
    for line in stderr.split("startup-probe: first commit")[0].splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _, name = (part.strip() for part in line.replace(":", "|", 1).split("|"))
        package = name.split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(self_us) / 1e6
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return {name: round(seconds, 3) for name, seconds in ranked}


def node_first_row(image: str) -> float:
    """One node of ``image`` in a fresh data directory: ``docker run`` → first row."""
    work, data = _work()
    name = f"{PREFIX}node"
    try:
        args = [*_node_args(image, data, name, []), image]
        return round(first_row_after(args, data / f"{name}.db"), 3)
    finally:
        _docker("rm", "-f", name)
        shutil.rmtree(work, ignore_errors=True)


def bare_row_first_row(image: str) -> float:
    """A bare interpreter committing one row: ``docker run`` → first row, as the node."""
    work, data = _work()
    name = f"{PREFIX}bare_row"
    try:
        return round(first_row_after(_bare_args(image, data, name), data / f"{name}.db"), 3)
    finally:
        _docker("rm", "-f", name)
        shutil.rmtree(work, ignore_errors=True)


def single(image: str, repeats: int, compare: str | None = None) -> dict[str, Any]:
    """Each measure ``repeats`` times, interleaved (with ``compare``'s node, another image,
    in the same rounds); medians, and each round's figures."""
    images = [image] if compare is None else [image, compare]
    rounds: list[dict[str, Any]] = []
    for number in range(repeats):
        round_: dict[str, Any] = {
            "bare_pass_s": round(bare_pass(image), 3),
            "bare_row_first_row_s": bare_row_first_row(image),
        }
        for each in images:
            round_[each] = {"node_first_row_s": node_first_row(each), "stages_s": breakdown(each)}
        rounds.append(round_)
        print(f"startup: round {number + 1}: {json.dumps(round_)}", flush=True)
    found: dict[str, Any] = {
        "repeats": repeats,
        "bare_pass_s": round(median([r["bare_pass_s"] for r in rounds]), 3),
        "bare_row_first_row_s": round(median([r["bare_row_first_row_s"] for r in rounds]), 3),
        **node_medians(image, rounds),
    }
    if compare is not None:
        found["compare"] = {"image": compare, **node_medians(compare, rounds)}
    found["rounds"] = rounds
    return found


def node_medians(image: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of one image's node over the rounds, and its imports (one more run
    with ``-X importtime``, apart: the tracing slows the imports it measures)."""
    runs = [r[image] for r in rounds]
    stages = {
        stage: round(median([run["stages_s"][stage] for run in runs]), 3)
        for stage in STAGES
        if all(stage in run["stages_s"] for run in runs)
    }
    return {
        "node_first_row_s": round(median([run["node_first_row_s"] for run in runs]), 3),
        "stages_s": stages,
        "stage_durations_s": durations(stages),
        "imports_by_package_s": breakdown(image, importtime=True)["imports_by_package_s"],
    }


def durations(stages: dict[str, float]) -> dict[str, float]:
    """How long each stage took: its end minus the end of the stage before it in time
    (a node may start its edges after its first row)."""
    previous = 0.0
    found = {}
    for stage, end in sorted(stages.items(), key=lambda item: item[1]):
        found[stage] = round(end - previous, 3)
        previous = end
    return found


def created_at(names: list[str]) -> dict[str, float]:
    """Wall time each container was created (``docker run`` reached the engine)."""
    found = _docker("inspect", "-f", "{{.Name}} {{.Created}}", *names, timeout=300)
    moments = {}
    for line in found.stdout.splitlines():
        name, stamp = line.split()
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.fromisoformat(whole + "+00:00").timestamp()
        moments[name.lstrip("/")] = moment + float(f"0.{fraction or 0}")
    return moments


def fleet_figures(
    count: int, data: Path, start: Callable[[], list[str]], db_of: Callable[[str], Path]
) -> dict[str, Any]:
    """Start ``count`` containers with ``start`` (returning their names) while polling
    their databases; each one's creation to first row, and the fleet's."""
    began = time.time()
    load_before = os.getloadavg()[0]
    with ThreadPoolExecutor(1) as launcher:
        launched = launcher.submit(start)
        # Until the names are known, watch every database the fleet will write.
        seen: dict[Path, float] = {}
        sweeps: list[float] = []
        while not launched.done() or len(seen) < count:
            if time.time() - began > TIMEOUT_S:
                break
            sweep_began = time.time()
            for db in sorted(data.glob("*.db")):
                if db not in seen and has_row(db):
                    seen[db] = time.time()
            sweeps.append(time.time() - sweep_began)
            time.sleep(0.2)
        names = launched.result()
    created = created_at(names)
    per_container = [seen[db_of(n)] - created[n] for n in names if db_of(n) in seen]
    first_created = min(created.values())
    return {
        "containers": count,
        "with_a_row": len(per_container),
        "first_row_per_container_median_s": rounded(median(per_container), 1),
        "first_row_per_container_p95_s": rounded(percentile(per_container, 0.95), 1),
        "first_row_per_container_max_s": rounded(max(per_container, default=None), 1),
        "all_rows_after_first_created_s": rounded(max(seen.values()) - first_created, 1),
        "all_rows_after_start_call_s": rounded(max(seen.values()) - began, 1),
        "all_created_after_start_call_s": rounded(max(created.values()) - began, 1),
        "poll_sweep_median_s": rounded(median(sweeps), 3),
        "load_average_before": round(load_before, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
    }


def node_fleet(image: str, count: int) -> dict[str, Any]:
    """``count`` nodes as ``generate_sensors.sh --db-per-node --network none`` starts them."""
    work, data = _work()
    base = [str(SCRIPT), "--prefix", PREFIX, "--image", image,
            "--config", str(ROOT / "config.yaml"), "--data-dir", str(data),
            "--identities-dir", str(work / "identities")]  # fmt: skip

    def start() -> list[str]:
        up = subprocess.run(
            [*base, "--count", str(count), "--seed", "7", "--db-per-node", "--run-time", "0",
             "--network", "none"],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=ROOT,
        )  # fmt: skip
        if up.returncode != 0:
            raise SystemExit(f"startup: starting {count} nodes failed:\n{up.stderr[-3000:]}")
        listed = _docker("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}")
        return listed.stdout.split()

    def db_of(name: str) -> Path:
        return data / f"sensor_{name.removeprefix(PREFIX)}.db"

    try:
        return fleet_figures(count, data, start, db_of)
    finally:
        subprocess.run([*base, "--down"], capture_output=True, timeout=TIMEOUT_S, check=False)
        _remove(LABEL)
        shutil.rmtree(work, ignore_errors=True)


def bare_fleet(image: str, count: int, parallel: int = 8) -> dict[str, Any]:
    """``count`` bare-row containers, ``parallel`` ``docker run`` at a time (the script's)."""
    work, data = _work()
    names = [f"{PREFIX}bare_{i:03d}" for i in range(count)]

    def start() -> list[str]:
        with ThreadPoolExecutor(parallel) as pool:
            results = list(pool.map(lambda n: _docker(*_bare_args(image, data, n)), names))
        failed = [r.stderr for r in results if r.returncode != 0]
        if failed:
            raise SystemExit(f"startup: {len(failed)} bare containers failed: {failed[0][-500:]}")
        return names

    try:
        return fleet_figures(count, data, start, lambda name: data / f"{name}.db")
    finally:
        _remove(BARE_LABEL)
        shutil.rmtree(work, ignore_errors=True)


def _remove(label: str) -> None:
    leftover = _docker("ps", "-aq", "--filter", f"label={label}").stdout.split()
    if leftover:
        _docker("rm", "-f", *leftover, timeout=TIMEOUT_S)


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--repeats", type=int, default=5, help="rounds of the one-container run")
    args.add_argument("--fleet", type=int, default=200, help="containers of the fleet (0: none)")
    args.add_argument("--image", default="sensor-simulator")
    args.add_argument(
        "--compare",
        metavar="IMAGE",
        help="another image (an earlier build) whose node runs in the same rounds and fleet",
    )
    options = args.parse_args()
    repeats, fleet = (1, 2) if options.smoke else (options.repeats, options.fleet)
    reason = unavailable(options.image)
    if reason is not None:
        path = save("startup", {"skipped": reason}, options.out)
        print(f"startup: skipped: {reason}  → {path}")
        return
    for label in (LABEL, BARE_LABEL):
        _remove(label)
    result: dict[str, Any] = {
        "image": options.image,
        "cpu_cores_available": os.cpu_count(),
        "single": single(options.image, repeats, options.compare),
    }
    one = result["single"]
    print(
        f"startup: one container: first row {one['node_first_row_s']} s after docker run; "
        f"bare python -c pass {one['bare_pass_s']} s, bare row {one['bare_row_first_row_s']} s",
        flush=True,
    )
    path = save("startup", result, options.out)
    if fleet:
        if options.compare:
            result["single"]["compare"]["fleet"] = node_fleet(options.compare, fleet)
            save("startup", result, options.out)
        result["fleet"] = node_fleet(options.image, fleet)
        result["fleet_bare"] = bare_fleet(options.image, fleet)
        path = save("startup", result, options.out)
        nodes, bare = result["fleet"], result["fleet_bare"]
        print(
            f"startup: {fleet} containers: first row per container median "
            f"{nodes['first_row_per_container_median_s']} s, max "
            f"{nodes['first_row_per_container_max_s']} s, all after "
            f"{nodes['all_rows_after_first_created_s']} s; bare rows: median "
            f"{bare['first_row_per_container_median_s']} s, all after "
            f"{bare['all_rows_after_first_created_s']} s",
            flush=True,
        )
    print(f"startup: → {path}")


if __name__ == "__main__":
    main()
