"""The Modbus TCP face: one pymodbus server, one unit (device id) per sensor.

Unit ids are 1, 2, … in the order the identities are given. Each unit holds
the newest reading in nine registers, readable as input registers (function
4) and, identically, as holding registers (function 3); writes are refused::

    0-1  temperature   float32, big-endian, high word first (NaN: missing data)
    2-3  vibration     float32
    4-5  voltage       float32
    6    status_code   0 or 1, as in SQLite
    7    anomaly_flag  0 or 1
    8    anomaly type  0 none, 1 spike, 2 trend, 3 pattern, 4 missing_data, 5 noise

A unit simulating an equipment model holds its channels and ground truth instead,
as ``registers.register_map`` lays them out (``sensorfleet models --registers``).
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ...equipment import EquipmentModel
from ...node.config import Config
from ...node.identity import Identity
from ...node.machine import MachineBlock
from ...node.readings import Block, Readings
from .base import FaceServer, Reading, machine_readings, readings_of
from .registers import NAN_WORDS, machine_registers, register_count

REGISTER_COUNT = 9
_NAN_WORDS = list(struct.unpack(">HH", struct.pack(">f", float("nan"))))


def registers_of(reading: Reading) -> list[int]:
    """The nine registers of one reading (see the module docstring)."""
    words = struct.unpack(
        ">HHHHHH", struct.pack(">fff", reading.temperature, reading.vibration, reading.voltage)
    )
    flag = int(reading.kind > 0)
    return [*words, flag, flag, reading.kind]


class ModbusServer(FaceServer):
    """Serves the newest reading of every sensor as unit 1, 2, …"""

    def __init__(
        self,
        config: Config,
        identities: Sequence[Identity],
        host: str,
        port: int,
        models: Sequence[EquipmentModel | None] = (),
    ) -> None:
        super().__init__(config, identities, host, port, models)
        # Registers per unit, and before the first reading: NaN values, no anomaly.
        self._counts = [
            REGISTER_COUNT if model is None else register_count(model, self.labels_hidden)
            for model in self.models
        ]
        self._latest = [
            [*_NAN_WORDS * 3, 0, 0, 0] if model is None else self._empty(model)
            for model in self.models
        ]
        self.server: ModbusTcpServer | None = None

    def _empty(self, model: EquipmentModel) -> list[int]:
        channels = [*NAN_WORDS] * len(model.channels)
        return channels + [0] * (register_count(model, self.labels_hidden) - len(channels))

    async def serve(self) -> int:
        devices = [
            SimDevice(
                id=position + 1,
                simdata=[
                    SimData(
                        address=0,
                        count=self._counts[position],
                        values=0,
                        datatype=DataType.REGISTERS,
                        readonly=True,
                    )
                ],
                action=functools.partial(self._fill, position),
            )
            for position in range(len(self.identities))
        ]
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            # pymodbus logs the reason and raises a generic error: name the real one.
            raise OSError(_bind_error(self.host, self.port)) from None
        self.server = server
        transport = server.transport
        sockets = getattr(transport, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else self.port

    async def _fill(
        self,
        position: int,
        _function_code: int,
        start_address: int,
        _address: int,
        _count: int,
        current_registers: list[int],
        _set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        # Called for every request to the unit: put its newest reading in place.
        latest = self._latest[position]
        current_registers[: len(latest)] = latest
        return None

    async def apply(self, position: int, block: Readings) -> int:
        if isinstance(block, MachineBlock):
            model = self.models[position]
            if model is not None and len(block):
                last = block.slice(len(block) - 1, len(block))  # registers hold the newest
                (machine,) = machine_readings(last)
                self._latest[position] = machine_registers(model, machine, self.labels_hidden)
            return len(block)
        assert isinstance(block, Block)
        newest = None
        published = 0
        for reading in readings_of(block):
            newest = reading
            published += 1
        if newest is not None:
            self._latest[position] = registers_of(newest)
        return published

    async def reconfigure(self, config: Config, identities: Sequence[Identity]) -> None:
        # Units follow identity order and registers hold no identity fields: nothing to do.
        return None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.shutdown()


def _bind_error(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on, as the operating system puts it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return "could not listen"
