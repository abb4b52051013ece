"""Industrial faces: the node's live readings served over OPC UA and Modbus TCP.

Each face is a server on its own thread and asyncio loop, registered with the
node loop as a ``ReadingListener``: the loop hands over every block of
readings it writes through a thread-safe queue and never waits for a client.
The protocol libraries (the ``faces`` extra) are imported only when a face is
enabled, so a node without faces starts as lean as before.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...node.config import Config
from ...node.identity import Identity

if TYPE_CHECKING:  # the face machinery (asyncio, threads) loads only when a face is on
    from ...equipment import EquipmentModel
    from .base import Face, FaceServer

# Modbus addresses units 1–247; more sensors than that need another process.
MAX_MODBUS_UNITS = 247

# Face name → (module in this package, its FaceServer class, library it needs, title).
_FACES: dict[str, tuple[str, str, str, str]] = {
    "opcua": ("opcua", "OpcUaServer", "asyncua", "OPC UA"),
    "modbus": ("modbus", "ModbusServer", "pymodbus", "Modbus TCP"),
}


def enabled_faces(config: Config) -> list[str]:
    """Names of the faces switched on in ``config``."""
    return [name for name in _FACES if getattr(config, name).enabled]


def face_problems(config: Config, sensors: int) -> list[str]:
    """One line per reason the enabled faces cannot serve this node (empty when they can)."""
    problems = []
    for name in enabled_faces(config):
        library = _FACES[name][2]
        if importlib.util.find_spec(library) is None:
            problems.append(
                f"{name}.enabled: needs the {library} library; install the 'faces' extra "
                "(pip install 'sensorfleet[faces]') or set it to false"
            )
    if config.modbus.enabled and sensors > MAX_MODBUS_UNITS:
        problems.append(
            f"modbus.enabled: {sensors} identities, but Modbus addresses at most "
            f"{MAX_MODBUS_UNITS} units (ids 1–{MAX_MODBUS_UNITS}); split the identities over "
            "processes of at most 247 each, or set modbus.enabled to false"
        )
    return problems


def start_faces(
    config: Config,
    identities: Sequence[Identity],
    models: Sequence[EquipmentModel | None] = (),
) -> list[Face]:
    """Start every enabled face on its own thread; binding happens in the background.

    A face whose port cannot be bound logs ``<name> unavailable`` and stops;
    the node keeps writing either way.
    """
    names = enabled_faces(config)
    if not names:
        return []  # no asyncio, no face threads: a node without faces never loads them
    from .base import Face

    faces = []
    for name in names:
        module_name, class_name, _, title = _FACES[name]
        factory = functools.partial(_build_server, module_name, class_name)
        face = Face(name, title, factory, config, identities, models)
        face.start()
        faces.append(face)
    return faces


def _build_server(module_name: str, class_name: str, *args: Any) -> FaceServer:
    # Runs on the face's thread: the protocol library is imported there, not at start-up.
    module = importlib.import_module(f"{__name__}.{module_name}")
    server: FaceServer = getattr(module, class_name)(*args)
    return server


__all__ = ["MAX_MODBUS_UNITS", "enabled_faces", "face_problems", "start_faces"]
