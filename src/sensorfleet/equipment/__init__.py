"""Equipment models as data: a catalogue of machine types and the engine that runs them.

    catalogue (YAML → validated, merged, compiled EquipmentModel)
        → simulator (EquipmentSimulator: events → segments → per-reading arrays)

The core of the data path for machines: nothing here opens a database, reads
a clock or imports an edge. ``node`` wires it in beside the classic sensor.
"""

from __future__ import annotations

from .catalogue import Catalogue, ChannelSpec, EquipmentModel, build_catalogue, load_catalogue
from .simulator import EquipmentBlock, EquipmentSimulator

__all__ = [
    "Catalogue",
    "ChannelSpec",
    "EquipmentBlock",
    "EquipmentModel",
    "EquipmentSimulator",
    "build_catalogue",
    "load_catalogue",
]
