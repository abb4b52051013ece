"""The built sensor-simulator image: runs, writes as non-root, flushes on docker stop.

Opt-in, because they test an image rather than this checkout: build it
(``docker/build-image.sh``), then run them with SENSORFLEET_REQUIRE_IMAGE=1, as
``.ci/docker.sh`` does right after its build. Otherwise they are skipped, so a plain
``pytest`` never judges the code by an image built from an older tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from polling import wait_until

IMAGE = os.environ.get("SENSORFLEET_IMAGE", "sensor-simulator")
REQUIRED = os.environ.get("SENSORFLEET_REQUIRE_IMAGE") == "1"


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not REQUIRED,
        reason=(
            f"tests the {IMAGE} image, not this checkout; CI runs them after building it: "
            f"docker/build-image.sh --tag {IMAGE} && SENSORFLEET_REQUIRE_IMAGE=1 "
            ".venv/bin/python -m pytest -m docker tests/test_container.py"
        ),
    ),
]


@pytest.fixture(scope="module", autouse=True)
def image_present() -> None:
    """Fail at once, with the fix, when the image to test is not there."""
    assert shutil.which("docker"), "docker is not installed"
    found = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False, timeout=60
    )
    assert found.returncode == 0, f"no image {IMAGE}: build it with docker/build-image.sh"


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a docker command and return its output."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@pytest.fixture
def container_name() -> Iterator[Callable[[], str]]:
    """Fresh sftest_ container names, removed (with their containers) after the test."""
    names: list[str] = []

    def make() -> str:
        names.append(f"sftest_pytest_{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield make
    for name in names:
        docker("rm", "-f", name, check=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory for a bind mount, owned by root like one `mkdir data` as root makes."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def query(data: Path, sql: str) -> list[list[str]]:
    """Rows of ``sql`` on data/sensor_data.db, read by the image as the data owner."""
    result = docker(
        "run", "--rm", "-v", f"{data}:/app/data", IMAGE, "sensorfleet-query", "--tsv", sql
    )
    return [line.split("\t") for line in result.stdout.splitlines()]


def summary(name: str) -> dict[str, Any]:
    """The node's final ``run summary`` log event."""
    output = docker("logs", name)
    logs = output.stderr + output.stdout
    events = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and '"run summary"' in line
    ]
    assert events, f"no run summary in the logs of {name}:\n{logs[-2000:]}"
    event: dict[str, Any] = events[-1]
    return event


def exit_code(name: str) -> int:
    return int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout)


def wait_healthy(name: str) -> None:
    """Wait for the HEALTHCHECK of ``name`` to report healthy; fail at once on unhealthy."""

    def healthy() -> bool:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
        if status not in ("starting", "healthy"):
            output = docker("logs", name)
            state = docker("inspect", "-f", "{{json .State.Health}}", name).stdout
            raise AssertionError(f"{name} is {status}: {state}\n{output.stderr}"[-3000:])
        return status == "healthy"

    wait_until(healthy, 60, f"{name} to be healthy", interval=0.5)


def wait_for_database(name: str, data: Path) -> None:
    """Wait for the node in ``name`` to create its database; fail with its logs if it stops."""

    def created() -> bool:
        running = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        if running != "true":
            output = docker("logs", name)
            raise AssertionError(f"{name} stopped:\n{output.stdout}{output.stderr}"[-3000:])
        return (data / "sensor_data.db").exists()

    wait_until(created, 30, "the database", interval=0.5)


def test_documented_run_writes_rows_as_a_non_root_user(
    data_dir: Path, container_name: Callable[[], str]
) -> None:
    """The README's docker run writes about one row a second into the mount, not as root."""
    name = container_name()
    docker(
        "run", "--name", name, "-v", f"{data_dir}:/app/data",
        "-e", "SENSOR_ID=CUSTOM001", "-e", "SENSOR_LOCATION=Custom Location",
        "-e", "RUN_TIME_SECONDS=6", IMAGE,
    )  # fmt: skip
    assert exit_code(name) == 0
    db = data_dir / "sensor_data.db"
    assert db.is_file()
    assert db.stat().st_uid != 0
    rows = query(data_dir, "SELECT sensor_id, location, COUNT(*) FROM sensor_readings GROUP BY 1")
    assert len(rows) == 1
    sensor_id, location, count = rows[0]
    assert (sensor_id, location) == ("CUSTOM001", "Custom Location")
    assert 5 <= int(count) <= 7
    assert summary(name)["rows_written"] == int(count)


def test_data_directory_of_a_host_user_is_written_as_that_user(
    data_dir: Path, container_name: Callable[[], str]
) -> None:
    """A bind mount owned by a non-root host user gets files owned by that user."""
    os.chown(data_dir, 4242, 4343)
    name = container_name()
    docker("run", "--name", name, "-v", f"{data_dir}:/app/data", "-e", "RUN_TIME_SECONDS=2", IMAGE)
    assert exit_code(name) == 0
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in data_dir.iterdir()}
    assert owners == {(4242, 4343)}


def test_files_left_by_root_are_taken_over(
    data_dir: Path, container_name: Callable[[], str]
) -> None:
    """A database a root process wrote earlier is handed to the node's user, not refused."""
    first, second = container_name(), container_name()
    docker(
        "run", "--name", first, "--user", "0:0", "--entrypoint", "sensorfleet",
        "-v", f"{data_dir}:/app/data", IMAGE, "run", "--run-time", "2",
    )  # fmt: skip
    assert (data_dir / "sensor_data.db").stat().st_uid == 0
    docker(
        "run", "--name", second, "-v", f"{data_dir}:/app/data", "-e", "RUN_TIME_SECONDS=2", IMAGE
    )
    assert exit_code(second) == 0
    assert summary(second)["rows_written"] >= 1
    assert (data_dir / "sensor_data.db").stat().st_uid == 10001


def test_docker_stop_flushes_every_buffered_row(
    tmp_path: Path, data_dir: Path, container_name: Callable[[], str]
) -> None:
    """SIGTERM from docker stop makes the node commit what it buffered and exit 0."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "simulation": {"readings_per_second": 40, "run_time_seconds": 0},
                "database": {
                    "path": "data/sensor_data.db",
                    "flush_interval_seconds": 3600,
                    "batch_size": 1000000,
                    "max_buffered_rows": 1000000,
                },
            }
        )
    )
    name = container_name()
    docker(
        "run", "-d", "--name", name, "-e", "SENSOR_ID=STOP001",
        "-v", f"{config}:/app/config.yaml:ro", "-v", f"{data_dir}:/app/data", IMAGE,
    )  # fmt: skip
    wait_for_database(name, data_dir)
    time.sleep(4)
    # Only the first rows are in the file (a node writes them at once); the rest wait in
    # the buffer for an interval of an hour.
    first = query(data_dir, "SELECT COUNT(*) FROM sensor_readings")
    time.sleep(2)
    assert query(data_dir, "SELECT COUNT(*) FROM sensor_readings") == first
    assert int(first[0][0]) < 40
    docker("stop", name)
    assert exit_code(name) == 0
    result = summary(name)
    assert result["rows_unwritten"] == 0
    assert result["rows_written"] == result["readings_generated"] >= 100
    assert query(data_dir, "SELECT COUNT(*) FROM sensor_readings") == [
        [str(result["rows_written"])]
    ]


def test_backfill_environment_writes_history_then_follows(
    data_dir: Path, container_name: Callable[[], str]
) -> None:
    """BACKFILL=1h writes an hour of history before the live rows."""
    name = container_name()
    docker(
        "run", "--name", name, "-v", f"{data_dir}:/app/data",
        "-e", "BACKFILL=1h", "-e", "RUN_TIME_SECONDS=2", IMAGE,
    )  # fmt: skip
    assert exit_code(name) == 0
    ((count, first, last),) = query(
        data_dir, "SELECT COUNT(*), MIN(timestamp), MAX(timestamp) FROM sensor_readings"
    )
    assert 3600 <= int(count) <= 3600 + 3
    assert first[:13] < last[:13]  # at least one hour boundary apart


def test_mounted_config_errors_exit_2_with_the_fix(
    tmp_path: Path, data_dir: Path, container_name: Callable[[], str]
) -> None:
    """A bad mounted config.yaml stops the container with exit 2 and names the key."""
    config = tmp_path / "config.yaml"
    config.write_text("anomalies:\n  probability: 1.5\n")
    name = container_name()
    result = docker(
        "run", "--name", name, "-v", f"{config}:/app/config.yaml:ro",
        "-v", f"{data_dir}:/app/data", IMAGE, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "anomalies.probability" in result.stderr


def test_healthcheck_reports_healthy(data_dir: Path, container_name: Callable[[], str]) -> None:
    """The image's HEALTHCHECK asks /healthz and the running node answers healthy."""
    name = container_name()
    docker(
        "run", "-d", "--name", name, "--health-interval", "1s", "--health-start-period", "1s",
        "-v", f"{data_dir}:/app/data", IMAGE,
    )  # fmt: skip
    wait_healthy(name)


def test_collector_container_ships_rows_and_reports_healthy(
    tmp_path: Path, data_dir: Path, container_name: Callable[[], str]
) -> None:
    """A `sensorfleet sync` container on a node's data ships its rows into /central, its
    health check asks the collector's /metrics, and SIGTERM stops it with exit 0."""
    node, sync = container_name(), container_name()
    central = tmp_path / "central"
    central.mkdir()
    docker("run", "-d", "--name", node, "-v", f"{data_dir}:/app/data", IMAGE)
    wait_for_database(node, data_dir)
    docker(
        "run", "-d", "--name", sync, "--health-interval", "1s", "--health-start-period", "1s",
        "-v", f"{data_dir}:/app/data", "-v", f"{central}:/central",
        "-e", "SYNC_SINK=sqlite:////central/fleet.db", IMAGE,
        "sensorfleet", "sync", "/app/data", "--interval", "1s", "--metrics-port", "9102",
    )  # fmt: skip
    wait_healthy(sync)
    docker("stop", "--time", "60", node)
    wait_until(lambda: not query(data_dir, "SELECT 1 FROM sensor_readings WHERE synced = 0"),
               60, "every row shipped")  # fmt: skip
    docker("stop", "--time", "60", sync)
    assert exit_code(sync) == 0
    (written,) = query(data_dir, "SELECT COUNT(*) FROM sensor_readings")
    sql = "SELECT COUNT(*), COUNT(DISTINCT timestamp) FROM sensor_readings"
    shipped = docker(
        "run", "--rm", "-v", f"{central}:/app/data", IMAGE,
        "sensorfleet-query", "--tsv", "--db", "/app/data/fleet.db", sql,
    )  # fmt: skip
    assert shipped.stdout.split() == [written[0], written[0]]
    assert int(written[0]) > 0


def test_image_identities_command_writes_the_demo_fleet(tmp_path: Path) -> None:
    """The image's sensorfleet CLI writes the 15 demo identities as the calling user."""
    out = tmp_path / "identities"
    out.mkdir()
    docker(
        "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}", "--entrypoint", "sensorfleet",
        "-v", f"{out}:/out", IMAGE, "identities", "--output-dir", "/out",
    )  # fmt: skip
    assert len(list(out.glob("*.json"))) == 15
    assert json.loads((out / "outdoor_2.json").read_text())["id"] == "OUTDOOR_2"


def test_image_is_built_for_containers() -> None:
    """Exec-form entrypoint, SIGTERM stop signal, a health check, /app/data volume, size."""
    (config,) = json.loads(docker("image", "inspect", IMAGE).stdout)
    settings = config["Config"]
    assert settings["Entrypoint"] == ["/usr/local/bin/docker-entrypoint.sh"]
    assert settings["StopSignal"] == "SIGTERM"
    assert settings["Healthcheck"]["Test"][0] == "CMD"
    assert "/app/data" in settings["Volumes"]
    assert "/central" not in settings["Volumes"]  # no anonymous volume per sensor container
    assert "PYTHONUNBUFFERED=1" in settings["Env"]
    assert config["Size"] < 300 * 1024 * 1024
