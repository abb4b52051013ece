"""The Modbus register map of an equipment model, derived from its channels and states.

One unit per sensor, as for the classic sensor; an equipment unit holds::

    0 …         each channel in catalogue order, float32 big-endian, two registers
                (NaN while its instrument drops out)
    then        state             index into the model's states (``sensorfleet models``)
                fault             0 none, else 1 + index into the model's faults
                instrument_fault  the same coding
                maintenance       0 or 1
                health            float32
                fault_severity    float32
                rul_seconds       float32 (NaN while healthy)

With ``labels: {mode: hidden}`` the unit ends after the channels: no register
carries ground truth. ``register_map`` is the one description the server fills
and ``sensorfleet models --registers`` prints, so the two cannot drift.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from ...equipment import EquipmentModel
from .base import MachineReading

NAN_WORDS: tuple[int, int] = struct.unpack(">HH", struct.pack(">f", float("nan")))


@dataclass(frozen=True)
class Register:
    """One value of a unit: where it starts, how it is encoded, what it means."""

    address: int
    name: str
    encoding: Literal["float32", "uint16"]
    meaning: str

    @property
    def count(self) -> int:
        return 2 if self.encoding == "float32" else 1


def register_map(model: EquipmentModel, labels_hidden: bool = False) -> list[Register]:
    """The registers of a unit simulating ``model``, in address order."""
    found: list[Register] = []
    address = 0

    def add(name: str, encoding: Literal["float32", "uint16"], meaning: str) -> None:
        nonlocal address
        found.append(Register(address, name, encoding, meaning))
        address += found[-1].count

    for channel in model.channels:
        add(channel.name, "float32", channel.unit or "(no unit)")
    if not labels_hidden:
        states = ", ".join(f"{i} {name}" for i, name in enumerate(model.states))
        faults = ", ".join(f"{i + 1} {name}" for i, name in enumerate(model.faults))
        add("state", "uint16", states)
        add("fault", "uint16", f"0 none, {faults}")
        add("instrument_fault", "uint16", "0 none, as fault")
        add("maintenance", "uint16", "0 or 1")
        add("health", "float32", "1 as new down to 0")
        add("fault_severity", "float32", "0 to 1")
        add("rul_seconds", "float32", "s, NaN while healthy")
    return found


def register_count(model: EquipmentModel, labels_hidden: bool = False) -> int:
    """How many registers a unit of ``model`` holds."""
    return sum(register.count for register in register_map(model, labels_hidden))


def _float_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def machine_registers(
    model: EquipmentModel, reading: MachineReading, labels_hidden: bool = False
) -> list[int]:
    """The registers of one reading, as ``register_map`` lays them out."""
    words: list[int] = []
    for value in reading.channels:
        words += _float_words(value)
    if labels_hidden:
        return words
    codes = {name: index + 1 for index, name in enumerate(model.faults)}
    words += [
        model.states.index(reading.state),
        codes.get(reading.fault or "", 0),
        codes.get(reading.instrument_fault or "", 0),
        int(reading.maintenance),
    ]
    for value in (reading.health, reading.fault_severity, reading.rul_seconds):
        words += _float_words(value)
    return words
