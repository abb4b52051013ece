"""``sensorfleet sync``: ship ``synced = 0`` rows from node databases to a central sink."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SensorfleetError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="ship unsynced rows from node databases to a central store",
        description="Ship synced = 0 rows from node databases to a central sink, exactly once.",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    raise SensorfleetError("sync: not available yet")
