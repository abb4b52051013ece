"""OPC UA and Modbus TCP faces of a live node, read by real clients over loopback."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import run_main, write_config, write_identity
from nodeproc import (
    NodeProcess,
    count_rows,
    http_json,
    micros,
    monitoring_url,
    rows,
    start_node,
    start_node_of_sensors,
    wait_until,
)
from servers import missing

from sensorfleet.errors import InputError
from sensorfleet.node.config import build_config, environment_overrides

asyncua = pytest.importorskip("asyncua")
pymodbus_client = pytest.importorskip("pymodbus.client")
ua = asyncua.ua
every_reading = pytest.importorskip("sensorfleet.edges.faces.opcua").every_reading

OPCUA = {"enabled": True, "host": "127.0.0.1", "port": 0}
MODBUS = {"enabled": True, "host": "127.0.0.1", "port": 0}
MONITORING = {"enabled": True, "host": "127.0.0.1", "port": 0}
KIND_CODES = {None: 0, "spike": 1, "trend": 2, "pattern": 3, "missing_data": 4, "noise": 5}


def opcua_url(node: NodeProcess) -> str:
    event = node.wait_for("opcua started", timeout=120)
    return f"opc.tcp://127.0.0.1:{event['port']}/"


def modbus_port(node: NodeProcess) -> int:
    return int(node.wait_for("modbus started", timeout=60)["port"])


class Recorder:
    """Collects data-change notifications: (node id, value, status, source timestamp µs)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, int, int]] = []

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        dv = data.monitored_item.Value
        stamp = round((dv.SourceTimestamp - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
        self.seen.append((node.nodeid.Identifier, value, dv.StatusCode.value, stamp))


async def subscribe_every_change(
    url: str, node_ids: list[str], seconds: float, during: Any = None
) -> list[tuple[str, Any, int, int]]:
    """Subscribe (queue size 0 = server maximum, trigger on timestamps too) for ``seconds``."""
    recorder = Recorder()
    async with asyncua.Client(url) as client:
        ns = await client.get_namespace_index("urn:sensorfleet")
        subscription = await client.create_subscription(50, recorder)
        requests = [
            every_reading(ua.NodeId(node_id, ns), handle)
            for handle, node_id in enumerate(node_ids, start=1)
        ]
        await subscription.create_monitored_items(requests)
        if during is not None:
            await asyncio.to_thread(during)
        await asyncio.sleep(seconds)
        await subscription.delete()
    return recorder.seen


@pytest.mark.slow
def test_opcua_subscription_sees_every_row_with_its_values_and_timestamp(tmp_path: Path) -> None:
    """At 20 readings/s a subscription gets every SQLite row: same values, same timestamps."""
    config = {
        "simulation": {"readings_per_second": 20, "seed": 3},
        "anomalies": {"enabled": True, "probability": 0.2},
        "opcua": OPCUA,
        "monitoring": MONITORING,
    }
    with start_node(tmp_path, config, {"id": "P1"}) as node:
        url = opcua_url(node)
        control = monitoring_url(node)

        def force_missing_data() -> None:
            time.sleep(1.0)
            status, body = http_json(
                "POST", f"{control}/anomalies", {"type": "missing_data", "duration_seconds": 0.5}
            )
            assert status == 200, body

        seen = asyncio.run(
            subscribe_every_change(
                url, ["P1.Temperature", "P1.Vibration", "P1.Voltage", "P1.AnomalyType"], 3.0,
                force_missing_data,
            )
        )  # fmt: skip
        assert node.stop() == 0
    stopped = node.wait_for("opcua stopped")
    assert 0 < stopped["readings_published"] <= count_rows(tmp_path / "data.db")
    assert stopped["blocks_skipped"] == 0
    by_node: dict[str, list[tuple[Any, int, int]]] = {}
    for node_id, value, status, stamp in seen:
        by_node.setdefault(node_id, []).append((value, status, stamp))
    temperatures = by_node["P1.Temperature"]
    first, last = temperatures[0][2], temperatures[-1][2]
    written = [
        r
        for r in rows(
            tmp_path / "data.db", "timestamp, temperature, vibration, voltage, anomaly_type"
        )
        if first <= micros(r[0]) <= last
    ]
    assert len(written) >= 40, f"only {len(written)} rows in the subscribed window"
    assert any(r[1] is None for r in written), "the forced missing data is in the window"
    for column, name in enumerate(("Temperature", "Vibration", "Voltage"), start=1):
        expected = [
            (
                r[column],
                0 if r[column] is not None else ua.StatusCodes.BadSensorFailure,
                micros(r[0]),
            )
            for r in written
        ]
        assert by_node[f"P1.{name}"] == expected, name
    # The type changes only with the episodes; every change is a row's label at its time.
    labels = {micros(r[0]): r[4] for r in written}
    for value, status, stamp in by_node["P1.AnomalyType"]:
        if first <= stamp <= last:
            assert status == 0 and labels[stamp] == value


def test_modbus_registers_equal_the_newest_row_of_each_unit(tmp_path: Path) -> None:
    """Units 1 and 2 (identity order) hold their sensor's newest row; input = holding registers."""
    db = tmp_path / "data.db"
    with start_node_of_sensors(
        tmp_path,
        ["A", "B"],
        simulation={"readings_per_second": 1, "seed": 4},
        anomalies={"enabled": False},
        database={"path": "data.db", "flush_interval_seconds": 0.05},
        modbus=MODBUS,
        monitoring=MONITORING,
    ) as node:
        port = modbus_port(node)
        control = monitoring_url(node)
        wait_until(lambda: count_rows(db) >= 4, what="rows of both sensors")
        status, body = http_json(
            "POST", f"{control}/anomalies", {"type": "missing_data", "sensor_id": "B",
                                              "duration_seconds": 30})  # fmt: skip
        assert status == 200, body
        wait_until(lambda: rows(db, "temperature", "sensor_id = 'B'")[-1][0] is None, what="NULL")
        client = pymodbus_client.ModbusTcpClient("127.0.0.1", port=port)
        assert client.connect()
        try:
            for unit, sensor in ((1, "A"), (2, "B")):
                registers, newest = consistent_snapshot(client, db, unit, sensor)
                holding = client.read_holding_registers(0, count=9, device_id=unit).registers
                assert holding == registers or holding[:6] != registers[:6]  # a new reading
                assert registers == encode(newest), (unit, newest)
            write = client.write_register(0, 1, device_id=1)
            assert write.isError(), "registers are read-only"
        finally:
            client.close()
        assert node.stop() == 0


def consistent_snapshot(client: Any, db: Path, unit: int, sensor: str) -> tuple[list[int], tuple]:
    """Registers and newest row read with no reading in between (retried until so)."""
    columns = "temperature, vibration, voltage, status_code, anomaly_flag, anomaly_type"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        before = client.read_input_registers(0, count=9, device_id=unit).registers
        newest = rows(db, columns, f"sensor_id = '{sensor}'")[-1]
        after = client.read_input_registers(0, count=9, device_id=unit).registers
        if before == after and before == encode(newest):
            return before, newest
        time.sleep(0.1)
    return before, newest


def encode(row: tuple) -> list[int]:
    """The nine registers the docs promise for a row."""
    values = [math.nan if v is None else v for v in row[:3]]
    words = list(struct.unpack(">6H", struct.pack(">3f", *values)))
    return [*words, row[3], row[4], KIND_CODES[row[5]]]


def test_identity_edit_updates_the_opcua_properties(tmp_path: Path) -> None:
    """Editing node_identity.json changes Location, Model, FirmwareVersion on the server."""
    config = {"opcua": OPCUA, "config_reload": {"enabled": True, "check_interval_seconds": 1}}
    with start_node(tmp_path, config, {"id": "R1", "location": "Lab"}) as node:
        url = opcua_url(node)
        node.wait_for("config reload started")

        async def read(names: list[str]) -> list[Any]:
            async with asyncua.Client(url) as client:
                ns = await client.get_namespace_index("urn:sensorfleet")
                return [await client.get_node(ua.NodeId(f"R1.{n}", ns)).read_value() for n in names]

        names = ["Location", "Model", "FirmwareVersion", "Manufacturer"]
        assert asyncio.run(read(names)) == ["Lab", "TempVibe-2000", "1.4", "SensorTech"]
        write_identity(
            tmp_path / "node_identity.json",
            id="R1",
            location="Warehouse B",
            model="TempVibe-3000",
            firmware_version="1.3",
        )
        node.wait_for("identity reloaded")
        wanted = ["Warehouse B", "TempVibe-3000", "1.3", "SensorTech"]
        wait_until(lambda: asyncio.run(read(names)) == wanted, what="properties updated")
        assert node.stop() == 0


@pytest.mark.slow
def test_opcua_variables_are_analog_items_with_units_and_ranges(tmp_path: Path) -> None:
    """Temperature/Vibration/Voltage are AnalogItemType with UNECE units and config EURange."""
    config = {
        "opcua": OPCUA,
        "normal_parameters": {"voltage": {"mean": 24, "std_dev": 0.2, "min": 23, "max": 25}},
    }
    with start_node(tmp_path, config, {"id": "U1"}) as node:
        url = opcua_url(node)

        async def describe() -> dict[str, Any]:
            async with asyncua.Client(url) as client:
                ns = await client.get_namespace_index("urn:sensorfleet")
                sensors = await client.nodes.objects.get_child([f"{ns}:Sensors", f"{ns}:U1"])
                found = {}
                for name in ("Temperature", "Vibration", "Voltage"):
                    item = await sensors.get_child(f"{ns}:{name}")
                    unit = await (await item.get_child("0:EngineeringUnits")).read_value()
                    eu_range = await (await item.get_child("0:EURange")).read_value()
                    kind = await item.read_type_definition()
                    found[name] = (kind.Identifier, unit.UnitId, unit.DisplayName.Text,
                                   eu_range.Low, eu_range.High)  # fmt: skip
                return found

        found = asyncio.run(describe())
        assert node.stop() == 0
    analog = ua.ObjectIds.AnalogItemType
    assert found == {
        "Temperature": (analog, 4408652, "°C", 50.0, 80.0),  # UNECE CEL
        "Vibration": (analog, 5059633, "mm/s²", 0.1, 10.0),  # UNECE M41
        "Voltage": (analog, 5655636, "V", 23.0, 25.0),  # UNECE VLT
    }


@pytest.mark.slow
def test_taken_ports_are_logged_and_the_node_keeps_writing(tmp_path: Path) -> None:
    """If the OPC UA and Modbus ports are taken the node says so and keeps writing rows."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = {"opcua": {**OPCUA, "port": port}, "modbus": {**MODBUS, "port": port}}
        with start_node(tmp_path, config) as node:
            errors = [
                node.wait_for(f"{face} unavailable", timeout=60) for face in ("opcua", "modbus")
            ]
            before = count_rows(tmp_path / "data.db")
            wait_until(lambda: count_rows(tmp_path / "data.db") > before + 10, what="rows")
            assert node.stop() == 0
    for error in errors:
        assert error["level"] == "error" and error["port"] == port
        assert "in use" in error["error"].lower(), error
    assert errors[0]["action"] == "running without the OPC UA server"
    assert errors[1]["action"] == "running without the Modbus TCP server"
    # One line each: no library record repeating the failure, no traceback in any event.
    assert "Traceback" not in node.stderr
    library = [e for e in node.events if not e.get("logger", "").startswith("sensorfleet")]
    assert not [e for e in library if e["level"] in ("error", "critical")], library


def test_a_library_error_with_a_traceback_is_logged_as_one_line(tmp_path: Path) -> None:
    """A malformed OPC UA message makes asyncua log an exception: it arrives as one event
    naming the error class, with no traceback, and the node keeps serving."""
    with start_node(tmp_path, {"opcua": OPCUA}) as node:
        port = int(node.wait_for("opcua started", timeout=120)["port"])
        body = b"\x00\x00\x00\x00" + b"\x01" * 40  # a secure-channel open with a huge length
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"OPNF" + struct.pack("<I", 8 + len(body)) + body)
        raised = "Exception raised while processing message from client"

        def library_errors() -> list[dict[str, Any]]:
            return [e for e in node.events if e["event"].startswith(raised)]

        wait_until(library_errors, what="asyncua's error event")
        assert node.stop() == 0
    (event,) = library_errors()
    assert event["logger"].startswith("asyncua") and event["level"] == "error"
    assert "NotEnoughData" in event["event"] and "exception" not in event
    assert "Traceback" not in node.stderr


def test_faces_are_off_by_default_and_set_by_environment() -> None:
    """Both faces are off with ports 4840 and 5020; OPCUA_* and MODBUS_* set them."""
    config = build_config({}, "defaults")
    assert (config.opcua.enabled, config.opcua.port) == (False, 4840)
    assert (config.modbus.enabled, config.modbus.port) == (False, 5020)
    env = {"OPCUA_ENABLED": "true", "OPCUA_HOST": "0.0.0.0", "OPCUA_PORT": "4841",
           "MODBUS_ENABLED": "1", "MODBUS_HOST": "0.0.0.0", "MODBUS_PORT": "5021"}  # fmt: skip
    config = build_config({}, "defaults", environment_overrides(env))
    assert (config.opcua.enabled, config.opcua.host, config.opcua.port) == (True, "0.0.0.0", 4841)
    assert (config.modbus.enabled, config.modbus.host, config.modbus.port) == (
        True,
        "0.0.0.0",
        5021,
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"opcua": {"enabeld": True}}, "config.yaml: opcua.enabeld: unknown key"),
        ({"modbus": {"port": 70000}}, "config.yaml: modbus.port: "),
        (
            {"opcua": {"security_policies": ["Basic256Sha256_SignAndEncrypt"]}},
            "need certificate and private_key",
        ),
        ({"opcua": {"username": "operator"}}, "username and password must be set together"),
    ],
)
def test_face_settings_are_validated(section: dict[str, Any], expected: str) -> None:
    """Typos, bad ports and incomplete security settings are one-line errors."""
    with pytest.raises(InputError) as raised:
        build_config(section, "config.yaml")
    assert any(expected in line for line in raised.value.problems), raised.value.problems


def test_more_than_247_modbus_units_are_refused(tmp_path: Path) -> None:
    """248 identities with Modbus on: one line naming the limit, exit 2, nothing written."""
    write_config(tmp_path / "config.yaml", database={"path": "data.db"}, modbus=MODBUS)
    (tmp_path / "ids").mkdir()
    for i in range(248):
        write_identity(tmp_path / "ids" / f"s{i:03}.json", id=f"S{i:03}")
    result = run_main(["--config", "config.yaml", "--identity", "ids"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: modbus.enabled: 248 identities, but Modbus addresses at most 247 units "
        "(ids 1–247); split the identities over processes of at most 247 each, or set "
        "modbus.enabled to false"
    ]
    assert not (tmp_path / "data.db").exists()


@pytest.mark.slow
def test_opcua_login_refuses_anonymous_and_wrong_passwords(tmp_path: Path) -> None:
    """With username/password set, only that login may read; anonymous clients are refused."""
    config = {"opcua": {**OPCUA, "username": "operator", "password": "s3cret"}}
    with start_node(tmp_path, config, {"id": "L1"}) as node:
        url = opcua_url(node)

        async def read_as(user: str | None, password: str | None) -> Any:
            client = asyncua.Client(url)
            if user is not None:
                client.set_user(user)
                client.set_password(password or "")
            async with client:
                ns = await client.get_namespace_index("urn:sensorfleet")
                return await client.get_node(ua.NodeId("L1.Location", ns)).read_value()

        assert asyncio.run(read_as("operator", "s3cret")) == "Lab"
        for user, password in ((None, None), ("operator", "wrong")):
            with pytest.raises(Exception, match="Bad"):
                asyncio.run(read_as(user, password))
        assert node.stop() == 0
    assert node.named("opcua started")[0]["login"] == "username"
    assert "s3cret" not in node.stderr, "the password never reaches the log"


def make_certificate(folder: Path, name: str, uri: str) -> tuple[Path, Path]:
    """A self-signed certificate and key made with openssl, as docs/faces.md shows."""
    if shutil.which("openssl") is None:
        missing("openssl")
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=URI:{uri},DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.slow
def test_opcua_basic256sha256_with_certificates_and_login(tmp_path: Path) -> None:
    """A SignAndEncrypt-only server serves an encrypting, logged-in client and no other."""
    cert, key = make_certificate(tmp_path, "opcua", "urn:sensorfleet:node")
    client_cert, client_key = make_certificate(tmp_path, "client", "urn:example:client")
    opcua = {
        **OPCUA,
        "security_policies": ["Basic256Sha256_SignAndEncrypt"],
        "certificate": cert.name,  # relative to the config file's folder
        "private_key": key.name,
        "username": "operator",
        "password": "change-me",
    }
    with start_node(tmp_path, {"opcua": opcua}, {"id": "E1"}) as node:
        url = opcua_url(node)

        async def read(secure: bool) -> Any:
            client = asyncua.Client(url)
            client.set_user("operator")
            client.set_password("change-me")
            if secure:
                await client.set_security_string(
                    f"Basic256Sha256,SignAndEncrypt,{client_cert},{client_key}"
                )
            async with client:
                ns = await client.get_namespace_index("urn:sensorfleet")
                return await client.get_node(ua.NodeId("E1.Location", ns)).read_value()

        assert asyncio.run(read(secure=True)) == "Lab"
        # No unsecured endpoint is offered at all.
        with pytest.raises(asyncua.ua.UaError, match="No matching endpoints"):
            asyncio.run(read(secure=False))
        assert node.stop() == 0
    started = node.named("opcua started")[0]
    assert started["security_policies"] == "Basic256Sha256_SignAndEncrypt"


def test_a_node_without_faces_imports_none_of_their_libraries() -> None:
    """Loading the node's run command brings in no face machinery or protocol library."""
    code = (
        "import sys, sensorfleet.cli.run; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncua', 'pymodbus') "
        "or m.startswith('sensorfleet.edges.faces.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
