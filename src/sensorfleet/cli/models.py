"""``sensorfleet models``: the equipment catalogue, one model a line, name first."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..node.config import load_config
from ..node.inputs import DEFAULT_CONFIG, NodeInputs


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the equipment models an identity's type may name",
        description=(
            "List the equipment catalogue: the built-in models merged with the catalogue "
            "files of equipment.catalogues in the config, one model a line: name, reading "
            "interval, channels with units, faults, description."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"config file naming extra catalogue files (default: $CONFIG_FILE, else "
        f"./{DEFAULT_CONFIG} if present, else the built-in catalogue alone)",
    )
    parser.add_argument(
        "--registers",
        action="store_true",
        help="also print each model's Modbus register map (address, encoding, name, meaning)",
    )
    parser.set_defaults(handler=handle)


def describe(config_path: str | None) -> list[str]:
    """The catalogue as lines: ``name  every N s  channel (unit), …  faults: …  description``."""
    from ..equipment import load_catalogue

    inputs = NodeInputs.locate(config_path)
    config = load_config(inputs.config_path, inputs.config_overrides)
    catalogue = load_catalogue(config.equipment.catalogues)
    width = max(len(name) for name in catalogue.names())
    lines = []
    for name in catalogue.names():
        model = catalogue.get(name)
        channels = ", ".join(
            f"{channel.name} ({channel.unit})" if channel.unit else channel.name
            for channel in model.channels
        )
        faults = ", ".join(model.faults) or "none"
        description = " ".join(model.description.split())
        lines.append(
            f"{name:<{width}}  every {model.interval_seconds:g} s  {channels}  "
            f"faults: {faults}  {description}"
        )
    return lines


def register_lines(config_path: str | None) -> list[str]:
    """Each model's Modbus register map: a heading line, then one line per value."""
    from ..edges.faces.registers import register_map
    from ..equipment import load_catalogue

    inputs = NodeInputs.locate(config_path)
    config = load_config(inputs.config_path, inputs.config_overrides)
    catalogue = load_catalogue(config.equipment.catalogues)
    hidden = config.labels.mode == "hidden"
    lines = []
    for name in catalogue.names():
        lines.append(f"{name} (Modbus unit registers{', labels hidden' if hidden else ''}):")
        for register in register_map(catalogue.get(name), hidden):
            lines.append(
                f"  {register.address:>3}  {register.encoding:<7}  {register.name:<20}  "
                f"{register.meaning}"
            )
    return lines


def handle(args: argparse.Namespace) -> int:
    lines = describe(args.config)
    if args.registers:
        lines += register_lines(args.config)
    for line in lines:
        sys.stdout.write(f"{line}\n")
    return 0
