"""OPC UA and Modbus faces of equipment sensors, read by real clients over loopback."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import query, write_config, write_identity
from nodeproc import NodeProcess
from polling import wait_until

from sensorfleet.equipment import load_catalogue

asyncua = pytest.importorskip("asyncua")
pymodbus_client = pytest.importorskip("pymodbus.client")
registers = pytest.importorskip("sensorfleet.edges.faces.registers")
ua = asyncua.ua

FACES = {"enabled": True, "host": "127.0.0.1", "port": 0}
COMPRESSOR = load_catalogue().get("compressor")
CHANNELS = [channel.name for channel in COMPRESSOR.channels]


def start(folder: Path, labels: str = "inline") -> NodeProcess:
    """A live node of classic sensor A (unit 1) and compressor C1 (unit 2) at 5 readings/s."""
    (folder / "ids").mkdir(parents=True)
    write_config(
        folder / "config.yaml",
        simulation={"readings_per_second": 5, "seed": 8},
        database={"path": "node.db", "flush_interval_seconds": 0.05},
        opcua=FACES,
        modbus=FACES,
        labels={"mode": labels},
    )
    write_identity(folder / "ids" / "a.json", id="A")
    write_identity(folder / "ids" / "c1.json", id="C1", type="compressor")
    return NodeProcess(["--config", "config.yaml", "--identity", "ids"], folder)


def newest(db: Path, columns: str) -> tuple[Any, ...] | None:
    try:
        found = query(db, f"SELECT {columns} FROM compressor_readings ORDER BY id DESC LIMIT 1")
    except Exception:  # not written yet
        return None
    return found[0] if found else None


def encode(row: tuple[Any, ...], labels: bool) -> list[int]:
    """The registers docs/faces.md promises for a compressor row (channels, then labels)."""
    values = [math.nan if v is None else v for v in row[: len(CHANNELS)]]
    words = list(struct.unpack(f">{2 * len(values)}H", struct.pack(f">{len(values)}f", *values)))
    if not labels:
        return words
    state, fault, severity, instrument, health, rul, maintenance = row[len(CHANNELS) :]
    codes = {name: i + 1 for i, name in enumerate(COMPRESSOR.faults)}
    words += [COMPRESSOR.states.index(state), codes.get(fault, 0), codes.get(instrument, 0)]
    words.append(maintenance)
    floats = (health, severity, math.nan if rul is None else rul)
    return words + list(struct.unpack(">6H", struct.pack(">3f", *floats)))


@pytest.mark.parametrize("labels", ["inline", "hidden"])
def test_modbus_unit_holds_the_newest_machine_row(tmp_path: Path, labels: str) -> None:
    """Unit 2 holds the compressor's newest row as the register map lays it out: channels as
    float32, then state, fault codes and health; with hidden labels only the channels."""
    inline = labels == "inline"
    columns = ", ".join(CHANNELS)
    if inline:
        columns += ", state, fault, fault_severity, instrument_fault, health, rul_seconds"
        columns += ", maintenance"
    count = registers.register_count(COMPRESSOR, labels_hidden=not inline)
    assert count == 2 * len(CHANNELS) + (10 if inline else 0)  # 4 codes, 3 float32
    db = tmp_path / "node.db"
    with start(tmp_path, labels) as node:
        port = int(node.wait_for("modbus started", timeout=60)["port"])
        wait_until(lambda: newest(db, "id") is not None, what="compressor rows")
        client = pymodbus_client.ModbusTcpClient("127.0.0.1", port=port)
        assert client.connect()
        try:
            deadline, matched = time.monotonic() + 20, False
            while time.monotonic() < deadline and not matched:
                before = client.read_input_registers(0, count=count, device_id=2).registers
                row = newest(db, columns)
                after = client.read_input_registers(0, count=count, device_id=2).registers
                matched = before == after and row is not None and before == encode(row, inline)
                time.sleep(0.05)
            assert matched, (before, row)
            beyond = client.read_input_registers(count, count=1, device_id=2)
            assert beyond.isError(), "no register past the map"
            assert len(client.read_input_registers(0, count=9, device_id=1).registers) == 9
        finally:
            client.close()
        assert node.stop() == 0


def test_opcua_machine_channels_are_analog_items_and_labels_are_variables(tmp_path: Path) -> None:
    """A compressor's channels are AnalogItems with catalogue units and ranges, its state is a
    variable following the rows; with hidden labels there is no State at all."""

    async def browse(url: str) -> dict[str, Any]:
        async with asyncua.Client(url) as client:
            ns = await client.get_namespace_index("urn:sensorfleet")
            machine = await client.nodes.objects.get_child([f"{ns}:Sensors", f"{ns}:C1"])
            power = await machine.get_child(f"{ns}:power_kw")
            unit = await (await power.get_child("0:EngineeringUnits")).read_value()
            eu_range = await (await power.get_child("0:EURange")).read_value()
            names = {
                (await child.read_browse_name()).Name for child in await machine.get_children()
            }
            state = None
            if "State" in names:
                state = await (await machine.get_child(f"{ns}:State")).read_value()
            return {
                "kind": (await power.read_type_definition()).Identifier,
                "unit": (unit.UnitId, unit.DisplayName.Text),
                "range": (eu_range.Low, eu_range.High),
                "names": names,
                "state": state,
            }

    power = COMPRESSOR.channel("power_kw")
    with start(tmp_path / "inline") as node:
        url = f"opc.tcp://127.0.0.1:{node.wait_for('opcua started', timeout=120)['port']}/"
        wait_until(lambda: newest(tmp_path / "inline" / "node.db", "id") is not None, what="rows")
        found = asyncio.run(browse(url))
        assert node.stop() == 0
    assert found["kind"] == ua.ObjectIds.AnalogItemType
    assert found["unit"] == (int.from_bytes(b"KWT", "big"), "kW")  # UNECE kilowatt
    assert found["range"] == (power.minimum, power.maximum)
    assert set(CHANNELS) | {"State", "Fault", "Health", "Model"} <= found["names"]
    assert found["state"] in COMPRESSOR.states
    with start(tmp_path / "hidden", labels="hidden") as node:
        url = f"opc.tcp://127.0.0.1:{node.wait_for('opcua started', timeout=120)['port']}/"
        found = asyncio.run(browse(url))
        assert node.stop() == 0
    assert set(CHANNELS) <= found["names"]
    assert not {"State", "Fault", "Health", "RulSeconds", "Maintenance"} & found["names"]
