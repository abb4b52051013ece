"""Fleet identities: the demo preset, the seeded mix, the files and the ConfigMap they become."""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, clean_env, run_cli
from servers import free_port

from sensorfleet.equipment import load_catalogue
from sensorfleet.errors import InputError
from sensorfleet.fleet import (
    FIRMWARE_VERSIONS,
    MANUFACTURERS,
    MODELS,
    demo_identities,
    generate_identities,
    identity_document,
    numbered,
    parse_firmware_mix,
    parse_types,
    render_configmap,
    render_identity,
    typed_identities,
    write_identities,
)
from sensorfleet.node.config import load_config
from sensorfleet.node.identity import load_identity
from sensorfleet.site import load_site, site_identities


def test_demo_fleet_is_the_original_fifteen() -> None:
    """The demo preset has the original demo's groups, makers, models and firmware."""
    fleet = demo_identities()
    assert len(fleet) == 15
    groups = Counter(
        (i.identity.location.split(" - ")[0], i.identity.manufacturer, i.identity.firmware_version)
        for i in fleet
    )
    assert groups == {
        ("Factory A", "SensorTech", "1.3"): 5,
        ("Factory A", "SensorTech", "1.4"): 5,
        ("Warehouse B", "DataSense", "1.3"): 3,
        ("Outdoor", "VibrationPlus", "1.4"): 2,
    }
    warehouse_models = sorted(i.identity.model for i in fleet if i.name.startswith("warehouse"))
    assert warehouse_models == ["TempVibe-1000", "TempVibe-2000", "TempVibe-3000"]
    assert {i.identity.model for i in fleet if i.name.startswith("factory")} == {"TempVibe-2000"}
    assert {i.identity.model for i in fleet if i.name.startswith("outdoor")} == {"TempVibe-3000"}
    assert len({i.identity.id for i in fleet}) == 15
    assert len({i.name for i in fleet}) == 15


def test_demo_files_match_the_committed_samples(tmp_path: Path) -> None:
    """Generating the demo rewrites the sample files in identities/ byte for byte."""
    write_identities(demo_identities(), tmp_path)
    samples = sorted((ROOT / "identities").glob("*.json"))
    assert samples, "the repository ships sample identities"
    for sample in samples:
        assert (tmp_path / sample.name).read_text() == sample.read_text(), sample.name


def test_written_files_load_as_the_same_identities(tmp_path: Path) -> None:
    """Every written file is a valid node_identity.json that loads back unchanged."""
    fleet = [*demo_identities(), *generate_identities(40, seed=5)]
    paths = write_identities(fleet, tmp_path)
    assert [p.name for p in paths] == [f"{i.name}.json" for i in fleet]
    for item, path in zip(fleet, paths, strict=True):
        assert load_identity(str(path)) == item.identity


def test_generated_fleet_is_reproducible_and_grows_by_appending() -> None:
    """Same seed gives the same fleet; a larger fleet starts with the smaller one."""
    small = generate_identities(20, seed=11)
    assert generate_identities(20, seed=11) == small
    assert generate_identities(50, seed=11)[:20] == small
    assert generate_identities(20, seed=12) != small


def test_generated_fleet_mixes_sites_makers_models_and_firmware() -> None:
    """A large generated fleet has every site, maker, model and both firmware versions."""
    fleet = generate_identities(600, seed=1)
    assert len({i.identity.id for i in fleet}) == 600
    assert {i.identity.location.split()[0] for i in fleet} == {"Factory", "Warehouse", "Outdoor"}
    assert {i.identity.manufacturer for i in fleet} == {"SensorTech", "DataSense", "VibrationPlus"}
    assert {i.identity.model for i in fleet} == {"TempVibe-1000", "TempVibe-2000", "TempVibe-3000"}
    share_13 = sum(i.identity.firmware_version == "1.3" for i in fleet) / len(fleet)
    assert 0.42 < share_13 < 0.58


def test_firmware_mix_sets_the_share_of_each_version() -> None:
    """--firmware-mix weights decide the firmware split; a zero weight never appears."""
    fleet = generate_identities(2000, seed=3, firmware_mix=parse_firmware_mix("1.3=0.8,1.4=0.2"))
    versions = Counter(i.identity.firmware_version for i in fleet)
    assert 0.76 < versions["1.3"] / 2000 < 0.84
    only_new = generate_identities(200, seed=3, firmware_mix=parse_firmware_mix("1.3=0,1.4=1"))
    assert {i.identity.firmware_version for i in only_new} == {"1.4"}


@pytest.mark.parametrize("text", ["1.3", "1.3=x", "=1", "1.3=-1", ""])
def test_bad_firmware_mix_says_what_is_expected(text: str) -> None:
    """A malformed --firmware-mix is rejected with an example of the right form."""
    with pytest.raises(InputError, match=r"--firmware-mix: expected VERSION=WEIGHT"):
        parse_firmware_mix(text)


def test_fleet_needs_at_least_one_sensor_and_some_weight() -> None:
    """--count 0 and an all-zero firmware mix are input errors, not empty fleets."""
    with pytest.raises(InputError, match="--count"):
        generate_identities(0)
    with pytest.raises(InputError, match="--firmware-mix"):
        generate_identities(5, firmware_mix={"1.3": 0.0})


def test_unchanged_file_is_left_alone_and_changed_one_rewritten_in_place(tmp_path: Path) -> None:
    """Rewriting keeps each file's inode, so bind mounts of single files see the change."""
    fleet = demo_identities()[:2]
    first, second = write_identities(fleet, tmp_path)
    inodes = (first.stat().st_ino, second.stat().st_ino)
    second.write_text('{"id": "EDITED"}\n')
    first_mtime = first.stat().st_mtime_ns
    write_identities(fleet, tmp_path)
    assert first.stat().st_mtime_ns == first_mtime
    assert (first.stat().st_ino, second.stat().st_ino) == inodes
    assert second.read_text() == render_identity(fleet[1].identity)


def test_numbered_names_follow_slots_or_pod_indices() -> None:
    """Numbered fleets are named 1.json… for Swarm slots and 0.json… for pod indices."""
    fleet = demo_identities()
    assert [i.name for i in numbered(fleet, 1)][:3] == ["1", "2", "3"]
    assert [i.name for i in numbered(fleet, 0)][-1] == "14"
    assert [i.identity for i in numbered(fleet, 0)] == [i.identity for i in fleet]


def test_duplicate_file_names_are_refused(tmp_path: Path) -> None:
    """Two identities written under one name would overwrite each other: refused."""
    item = demo_identities()[0]
    with pytest.raises(InputError, match="used twice: factory_old_1"):
        write_identities([item, item], tmp_path)


def test_configmap_holds_each_identity_under_its_pod_index() -> None:
    """The ConfigMap's keys are 0.json… in fleet order and hold the identity JSON."""
    fleet = demo_identities()
    manifest = yaml.safe_load(render_configmap(fleet, "sensor-identities"))
    assert manifest["kind"] == "ConfigMap"
    assert manifest["metadata"]["name"] == "sensor-identities"
    assert list(manifest["data"]) == [f"{n}.json" for n in range(15)]
    for n, item in enumerate(fleet):
        assert json.loads(manifest["data"][f"{n}.json"]) == identity_document(item.identity)


def test_cli_writes_the_demo_and_prints_each_path(tmp_path: Path) -> None:
    """``sensorfleet identities`` writes 15 files and lists them, one path a line."""
    result = run_cli("identities", "--output-dir", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert len(paths) == 15
    assert paths[0] == "out/factory_old_1.json"
    assert all((tmp_path / p).is_file() for p in paths)


def test_cli_generates_a_numbered_seeded_fleet(tmp_path: Path) -> None:
    """``--count N --seed S --numbered 1`` writes 1.json…N.json matching the library."""
    result = run_cli(
        "identities", "--count", "7", "--seed", "9", "--numbered", "1", "-o", "slots", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "slots").iterdir()) == [
        f"{n}.json" for n in range(1, 8)
    ]
    expected = generate_identities(7, seed=9)[6].identity
    assert load_identity(str(tmp_path / "slots" / "7.json")) == expected


def test_cli_prints_a_configmap_without_writing_files(tmp_path: Path) -> None:
    """``--configmap NAME`` prints the manifest and creates no identity folder."""
    result = run_cli("identities", "--configmap", "ids", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["metadata"]["name"] == "ids"
    assert not (tmp_path / "identities").exists()


def test_cli_input_errors_exit_2_with_the_fix(tmp_path: Path) -> None:
    """Bad options end with exit 2 and one line that says what is expected."""
    result = run_cli("identities", "--count", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "--count: expected a number of sensors of 1 or more (got 0)" in result.stderr
    result = run_cli("identities", "--count", "3", "--firmware-mix", "new", cwd=tmp_path)
    assert result.returncode == 2
    assert "VERSION=WEIGHT" in result.stderr


def test_k8s_configmap_is_the_generated_demo() -> None:
    """fleet/k8s/identities-configmap.yaml is exactly what ``--configmap`` generates."""
    committed = yaml.safe_load((ROOT / "fleet/k8s/identities-configmap.yaml").read_text())
    assert committed == yaml.safe_load(render_configmap(demo_identities(), "sensor-identities"))
    statefulset = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "fleet/k8s/statefulset.yaml").read_text())
        if doc["kind"] == "StatefulSet"
    )
    assert statefulset["spec"]["replicas"] == len(committed["data"])
    volume = statefulset["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == committed["metadata"]["name"]


def test_compose_file_runs_each_demo_identity_once() -> None:
    """fleet/compose.yaml has one service per demo identity, each passing its own file."""
    compose = yaml.safe_load((ROOT / "fleet/compose.yaml").read_text())
    names = [item.name for item in demo_identities()]
    sensors = {k: v for k, v in compose["services"].items() if k != "sync"}
    assert list(sensors) == names
    for name, service in sensors.items():
        assert service["command"] == [
            "sensorfleet",
            "run",
            "--identity",
            f"/app/identities/{name}.json",
        ]
        assert service["image"] == "sensor-simulator"
        # The collector starts before the sensors and stops after them.
        assert service["depends_on"] == ["sync"]


def test_swarm_stack_maps_each_slot_to_one_demo_identity() -> None:
    """Slot N of the Swarm service mounts the N-th demo identity as /app/identities/N.json."""
    stack = yaml.safe_load((ROOT / "fleet/swarm-stack.yaml").read_text())
    sensor = stack["services"]["sensor"]
    names = [item.name for item in demo_identities()]
    assert sensor["deploy"]["replicas"] == len(names)
    assert sensor["environment"]["IDENTITY_FILE"] == "/app/identities/{{.Task.Slot}}.json"
    targets = {c["source"]: c["target"] for c in sensor["configs"]}
    for slot, name in enumerate(names, 1):
        assert stack["configs"][f"identity-{slot}"]["file"] == f"../identities/{name}.json"
        assert targets[f"identity-{slot}"] == f"/app/identities/{slot}.json"


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "sensorfleet", "identities", "--help"],
        ["bash", str(ROOT / "fleet/generate_sensors.sh"), "--help"],
    ],
    ids=["sensorfleet identities", "generate_sensors.sh"],
)
def test_every_option_is_documented(command: list[str]) -> None:
    """docs/containers.md mentions every option the command's --help lists."""
    result = subprocess.run(
        command,
        env=clean_env({"PYTHONPATH": str(ROOT / "src")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    options = set(re.findall(r"(--[a-z][a-z-]+)", result.stdout)) - {"--help"}
    text = (ROOT / "docs" / "containers.md").read_text()
    assert options and {o for o in options if o not in text} == set()


def _mount(volumes: list[str], target: str) -> str:
    """The source mounted at ``target`` in a Compose-style volume list."""
    (source,) = [v.split(":")[0] for v in volumes if v.split(":")[1] == target]
    return source


def test_swarm_sync_runs_on_every_node_with_that_nodes_data() -> None:
    """The stack's sync service is global, follows the sensors' volume and defaults to /central."""
    stack = yaml.safe_load((ROOT / "fleet/swarm-stack.yaml").read_text())
    sensor, sync = stack["services"]["sensor"], stack["services"]["sync"]
    assert sync["deploy"]["mode"] == "global"
    assert sync["command"][:3] == ["sensorfleet", "sync", "/app/data"]
    assert _mount(sync["volumes"], "/app/data") == _mount(sensor["volumes"], "/app/data")
    assert _mount(sync["volumes"], "/central") == "central"
    assert {"sensor-data", "central"} <= set(stack["volumes"])
    assert sync["environment"]["SYNC_SINK"] == "${SYNC_SINK:-sqlite:////central/fleet.db}"


def test_compose_sync_is_the_swarm_sync_on_the_shared_data_folder() -> None:
    """Compose runs the same collector command and sink default, on the sensors' data folder."""
    compose = yaml.safe_load((ROOT / "fleet/compose.yaml").read_text())
    stack = yaml.safe_load((ROOT / "fleet/swarm-stack.yaml").read_text())
    sync = compose["services"]["sync"]
    assert sync["command"] == stack["services"]["sync"]["command"]
    assert sync["environment"] == stack["services"]["sync"]["environment"]
    sensor = compose["services"]["factory_old_1"]
    assert _mount(sync["volumes"], "/app/data") == _mount(sensor["volumes"], "/app/data")


def test_k8s_sidecar_ships_the_pods_volume_and_the_node_keeps_only_unshipped_rows(
    tmp_path: Path,
) -> None:
    """Each pod has a sync sidecar on its data volume with the sink from the Secret; the
    node's mounted config turns on retention of shipped rows and loads as a valid config."""
    docs = {
        doc["kind"]: doc
        for path in (ROOT / "fleet/k8s").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] in ("StatefulSet", "Secret")
    }
    spec = docs["StatefulSet"]["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    sensor, sync = containers["sensor"], containers["sync"]
    data_mounts = {c: {m["name"]: m["mountPath"] for m in containers[c]["volumeMounts"]}
                   for c in containers}  # fmt: skip
    assert data_mounts["sync"]["data"] == data_mounts["sensor"]["data"] == "/app/data"
    assert sync["args"][:3] == ["sensorfleet", "sync", "/app/data"]
    (sink,) = [e for e in sync["env"] if e["name"] == "SYNC_SINK"]
    secret = sink["valueFrom"]["secretKeyRef"]
    assert secret["name"] == docs["Secret"]["metadata"]["name"]
    assert secret["key"] in docs["Secret"]["stringData"]
    (config_file,) = [e["value"] for e in sensor["env"] if e["name"] == "CONFIG_FILE"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "config"]
    assert config_file == data_mounts["sensor"]["config"] + "/config.yaml"
    configmap = yaml.safe_load((ROOT / "fleet/k8s/node-config.yaml").read_text())
    assert configmap["metadata"]["name"] == volume["configMap"]["name"]
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    node = load_config(str(path))
    assert node.database.path == "/app/data/sensor_data.db"
    assert node.database.retention.synced_max_age_seconds is not None
    assert node.database.retention.max_size_mb is not None


def test_bacalhau_sync_job_runs_beside_each_sensor_on_its_data_folder() -> None:
    """The sync daemon job targets the sensor job's nodes and data folder, sink from the env."""
    sensor = yaml.safe_load((ROOT / "fleet/bacalhau/sensor-daemon.yaml").read_text())
    sync = yaml.safe_load((ROOT / "fleet/bacalhau/sync-daemon.yaml").read_text())
    assert sync["Type"] == sensor["Type"] == "daemon"
    assert sync["Constraints"] == sensor["Constraints"]
    (task,) = sync["Tasks"]
    params = task["Engine"]["Params"]
    assert params["Parameters"][:3] == ["sensorfleet", "sync", "/app/data"]
    assert "SYNC_SINK={{.SYNC_SINK}}" in params["EnvironmentVariables"]
    data = {s["Target"]: s["Source"]["Params"] for s in task["InputSources"]}
    sensor_data = {s["Target"]: s["Source"]["Params"] for s in sensor["Tasks"][0]["InputSources"]}
    assert data["/app/data"] == {**sensor_data["/app/data"], "ReadWrite": True}
    assert task["Network"]["Type"] == "Full"


def _docker_helper(name: str) -> Any:
    """A module of docker/ (the image's helpers), imported from the checkout."""
    spec = importlib.util.spec_from_file_location(f"docker_{name}", ROOT / "docker" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_finds_the_collectors_metrics_port_in_its_command_line() -> None:
    """A `sensorfleet sync` command line is a collector; its --metrics-port is asked."""
    health = _docker_helper("healthcheck")
    argv = ["/opt/venv/bin/python3", "/opt/venv/bin/sensorfleet", "sync", "/app/data",
            "--metrics-port", "9102", "--metrics-host=0.0.0.0"]  # fmt: skip
    args = health.sync_arguments(argv)
    assert args == argv[3:]
    assert health.option(args, "--metrics-port") == "9102"
    assert health.option(args, "--metrics-host") == "0.0.0.0"
    assert (
        health.sync_arguments(["/opt/venv/bin/python3", "/opt/venv/bin/sensorfleet", "run"]) is None
    )


def test_collector_health_follows_its_real_metrics() -> None:
    """Healthy while nothing waits or the sink answered lately; unhealthy when rows wait
    and the last acknowledged batch is older than the limit, or there never was one."""
    from prometheus_client import generate_latest

    from sensorfleet.sync.metrics import SyncMetrics

    health = _docker_helper("healthcheck")
    metrics = SyncMetrics()
    text = lambda: generate_latest(metrics.registry).decode()  # noqa: E731
    assert health.sync_problem(text(), now=1000.0, stale=120) is None
    metrics.backlog.labels("/app/data/a.db").set(40)
    metrics.backlog.labels("/app/data/b.db").set(2)
    assert "42 rows wait" in health.sync_problem(text(), now=1000.0, stale=120)
    assert "never" in health.sync_problem(text(), now=1000.0, stale=120)
    metrics.last_success.set(950.0)
    assert health.sync_problem(text(), now=1000.0, stale=120) is None
    assert "150 s ago" in health.sync_problem(text(), now=1100.0, stale=120)
    metrics.backlog.labels("/app/data/a.db").set(0)
    metrics.backlog.labels("/app/data/b.db").set(0)
    assert health.sync_problem(text(), now=1100.0, stale=120) is None


def test_query_helper_joins_the_rows_of_every_database_in_a_folder(tmp_path: Path) -> None:
    """`sensorfleet-query --db FOLDER` runs the statement on every *.db and joins the rows."""
    for sensor, rows in (("A", 3), ("B", 5)):
        with sqlite3.connect(tmp_path / f"sensor_{sensor}.db") as conn:
            conn.execute("CREATE TABLE sensor_readings (sensor_id TEXT, synced INTEGER)")
            conn.executemany(
                "INSERT INTO sensor_readings VALUES (?, ?)",
                [(sensor, int(i < 2)) for i in range(rows)],
            )
        conn.close()
    (tmp_path / "notes.txt").write_text("not a database")
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker/query.py"), "--db", str(tmp_path), "--tsv",
         "SELECT sensor_id, COUNT(*), SUM(synced = 0) FROM sensor_readings GROUP BY sensor_id"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["A\t3\t1", "B\t5\t3"]


class _Healthz(http.server.BaseHTTPRequestHandler):
    """A /healthz that answers with the status and body set on the server, headers and
    body written separately as the node's monitor does, and records failed writes."""

    def do_GET(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.flush()
        time.sleep(0.2)  # the client has read the status line by now
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except OSError as exc:
            self.server.errors.append(exc)  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "exit_status"), [(200, 0), (503, 1)], ids=["healthy", "unhealthy"]
)
def test_node_healthcheck_asks_healthz_with_bash_alone(status: int, exit_status: int) -> None:
    """docker/healthcheck.sh (the image's HEALTHCHECK) exits 0 on a 200 from /healthz and 1
    with the status and the reasons otherwise, without starting Python."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Healthz)
    server.answer = (status, b'{"healthy": false, "reasons": ["write failing"]}' * 200)  # type: ignore[attr-defined]
    server.errors = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run(
            ["bash", str(ROOT / "docker/healthcheck.sh")],
            env={"PATH": "/usr/bin:/bin", "MONITORING_PORT": str(server.server_port)},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == exit_status, result.stderr
    # The whole answer is read: the node never sees its connection reset (a traceback in
    # its log every 15 s otherwise).
    assert server.errors == []  # type: ignore[attr-defined]
    if exit_status:
        assert "answered 503" in result.stderr
        assert "write failing" in result.stderr


def test_node_healthcheck_reports_a_node_that_does_not_listen() -> None:
    """With nothing on MONITORING_PORT the check fails with one line naming the URL."""
    port = free_port()
    result = subprocess.run(
        ["bash", str(ROOT / "docker/healthcheck.sh")],
        env={"PATH": "/usr/bin:/bin", "MONITORING_PORT": str(port)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == f"healthcheck: http://127.0.0.1:{port}/healthz unreachable"


KNOWN_TYPES = ["temperature_vibration", "compressor", "fan", "hvac", "motor"]


def test_typed_fleet_counts_each_type_with_the_classic_maker_and_firmware_mix() -> None:
    """``typed_identities`` gives COUNT machines of each type, drawn from the classic mix."""
    fleet = typed_identities({"compressor": 40, "hvac": 20}, seed=5)
    assert Counter(item.identity.type for item in fleet) == {"compressor": 40, "hvac": 20}
    assert [item.identity.id for item in fleet[:2]] == ["COMPRESSOR_0001", "COMPRESSOR_0002"]
    assert fleet[40].name == "hvac_0001"
    assert {item.identity.manufacturer for item in fleet} == set(MANUFACTURERS)
    assert {item.identity.model for item in fleet} == set(MODELS)
    assert {item.identity.firmware_version for item in fleet} == set(FIRMWARE_VERSIONS)
    kinds = {item.identity.location.split()[0] for item in fleet}
    assert kinds == {"Factory", "Warehouse", "Outdoor"}


def test_typed_fleet_is_seeded_and_keeps_each_sensor_when_others_are_added() -> None:
    """One seed gives one fleet; more of a type or a new type leaves the others as they were."""
    small = typed_identities({"compressor": 3, "fan": 2}, seed=1)
    assert small == typed_identities({"compressor": 3, "fan": 2}, seed=1)
    grown = typed_identities({"motor": 4, "compressor": 5, "fan": 2}, seed=1)
    by_id = {item.identity.id: item for item in grown}
    assert all(by_id[item.identity.id] == item for item in small)
    assert small != typed_identities({"compressor": 3, "fan": 2}, seed=2)


@pytest.mark.parametrize(
    ("text", "total", "expected"),
    [
        ("compressor=5,hvac=2", None, {"compressor": 5, "hvac": 2}),
        ("compressor=5,hvac=2", 70, {"compressor": 50, "hvac": 20}),
        ("compressor=5,hvac=2", 10, {"compressor": 7, "hvac": 3}),
        ("fan=1,motor=1,hvac=1", 4, {"fan": 2, "motor": 1, "hvac": 1}),
        ("fan=3, fan=1", None, {"fan": 4}),
    ],
)
def test_types_are_counts_or_with_a_total_proportions(
    text: str, total: int | None, expected: dict[str, int]
) -> None:
    """TYPE=COUNT pairs are exact counts, or scaled to ``--count`` by largest remainder."""
    assert parse_types(text, KNOWN_TYPES, total) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pump=3", "--types: unknown type 'pump'; expected one of temperature_vibration, "),
        ("compressor", "expected TYPE=COUNT pairs"),
        ("compressor=-1", "expected TYPE=COUNT pairs"),
        ("compressor=0", "expected at least one sensor"),
    ],
)
def test_bad_types_say_what_is_expected(text: str, message: str) -> None:
    """A mistyped ``--types`` is one problem naming the option and what it takes."""
    with pytest.raises(InputError) as caught:
        parse_types(text, KNOWN_TYPES)
    assert message in str(caught.value)


def test_cli_writes_machines_of_each_type(tmp_path: Path) -> None:
    """``--types`` writes one file per machine, loadable as the library's identities."""
    result = run_cli(
        "identities", "--types", "compressor=2,hvac=1", "--seed", "4", "-o", "ids", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "ids/compressor_0001.json",
        "ids/compressor_0002.json",
        "ids/hvac_0001.json",
    ]
    expected = typed_identities({"compressor": 2, "hvac": 1}, seed=4)
    assert [load_identity(str(tmp_path / p)) for p in result.stdout.split()] == [
        item.identity for item in expected
    ]


def test_cli_unknown_type_exits_2_naming_the_known_ones(tmp_path: Path) -> None:
    """An unknown type is exit 2 with one line listing the catalogue's types; nothing is written."""
    result = run_cli("identities", "--count", "9", "--types", "pump=3", cwd=tmp_path)
    assert result.returncode == 2
    known = ["temperature_vibration", *load_catalogue().names()]
    assert result.stderr.splitlines() == [
        f"error: --types: unknown type 'pump'; expected one of {', '.join(known)}"
    ]
    assert not (tmp_path / "identities").exists()


def _fleet_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run fleet/generate_sensors.sh with this interpreter's ``sensorfleet`` first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        ["bash", str(ROOT / "fleet/generate_sensors.sh"), *args],
        cwd=cwd,
        env=clean_env({"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_fleet_script_plans_a_site_file_without_docker(tmp_path: Path) -> None:
    """``--site FILE --dry-run`` writes the site's identities and lists a container per machine."""
    result = _fleet_script(
        "--site",
        str(ROOT / "fleet/site.yaml"),
        "--seed",
        "3",
        "--dry-run",
        "--db-per-node",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = site_identities(load_site(str(ROOT / "fleet/site.yaml"), KNOWN_TYPES), seed=3)
    written = [load_identity(str(p)) for p in (tmp_path / "identities").iterdir()]
    by_id = {identity.id: identity for identity in written}
    assert by_id == {item.identity.id: item.identity for item in expected}
    plan = [line.split() for line in result.stdout.splitlines() if line.startswith("sensor_")]
    assert [(row[0], row[1], row[-1]) for row in plan] == [
        (f"sensor_{i.identity.id}", i.identity.type, f"data/sensor_{i.identity.id}.db")
        for i in expected
    ]


def test_fleet_script_passes_types_and_count_through(tmp_path: Path) -> None:
    """``--count 6 --types compressor=2,fan=1`` plans four compressors and two fans."""
    result = _fleet_script(
        "--count", "6", "--types", "compressor=2,fan=1", "--dry-run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    plan = [line.split() for line in result.stdout.splitlines() if line.startswith("sensor_")]
    assert Counter(row[1] for row in plan) == {"compressor": 4, "fan": 2}
    assert {row[-1] for row in plan} == {"data/sensor_data.db"}


def test_fleet_script_stops_with_the_commands_error_for_an_unknown_type(tmp_path: Path) -> None:
    """A bad ``--types`` ends the script with exit 2 and the one-line error; nothing is planned."""
    result = _fleet_script("--types", "pump=2", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: --types: unknown type 'pump'; expected one of" in result.stderr
    assert "sensor_" not in result.stdout


def test_fleet_script_plans_the_demo_by_default(tmp_path: Path) -> None:
    """``--dry-run`` alone plans the 15 demo sensors, all on the shared database."""
    result = _fleet_script("--dry-run", "--prefix", "demo_", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plan = [line.split() for line in result.stdout.splitlines() if line.startswith("demo_")]
    assert [row[0] for row in plan] == [f"demo_{i.identity.id}" for i in demo_identities()]
    assert {row[-1] for row in plan} == {"data/sensor_data.db"}
