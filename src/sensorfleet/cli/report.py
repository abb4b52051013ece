"""``sensorfleet report``: summarise node databases and check them against the config."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SensorfleetError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summarise databases: anomaly rates by firmware/model/manufacturer/location",
        description="Summarise sensor databases and compare them with the configured behaviour.",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    raise SensorfleetError("report: not available yet")
