"""``sensorfleet identities``: write a fleet's ``node_identity.json`` files (or a ConfigMap)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..fleet import (
    DEFAULT_FIRMWARE_MIX,
    demo_identities,
    generate_identities,
    numbered,
    parse_firmware_mix,
    render_configmap,
    write_identities,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "identities",
        help="generate identity files for a fleet (the demo 15, or --count N)",
        description=(
            "Write one identity JSON file per sensor: the original demo fleet of 15 "
            "(factory firmware 1.3 and 1.4, warehouse, outdoor), or a reproducible mix "
            "of --count sensors. Prints the path of each file written."
        ),
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--preset",
        choices=["demo"],
        default="demo",
        help="a named fleet (default: demo)",
    )
    which.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="a generated fleet of N sensors with a mix of sites, makers, models and firmware",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="with --count: seed of the mix (default: 0)"
    )
    parser.add_argument(
        "--firmware-mix",
        metavar="MIX",
        default=",".join(f"{v}={w}" for v, w in DEFAULT_FIRMWARE_MIX.items()),
        help="with --count: firmware versions and their weights (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        "-o",
        metavar="DIR",
        default="identities",
        help="folder for the files (default: ./identities)",
    )
    parser.add_argument(
        "--numbered",
        metavar="FIRST",
        type=int,
        help="name files by position from FIRST (1.json, 2.json, …) instead of by sensor, "
        "for lookup by Swarm task slot (1) or StatefulSet pod index (0)",
    )
    parser.add_argument(
        "--configmap",
        metavar="NAME",
        help="print a Kubernetes ConfigMap NAME with the identities as <pod index>.json "
        "keys instead of writing files",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.count is not None:
        mix = parse_firmware_mix(args.firmware_mix)
        fleet = generate_identities(args.count, args.seed, mix)
    else:
        fleet = demo_identities()
    if args.configmap:
        sys.stdout.write(render_configmap(fleet, args.configmap, args.numbered or 0))
        return 0
    if args.numbered is not None:
        fleet = numbered(fleet, args.numbered)
    for path in write_identities(fleet, Path(args.output_dir)):
        print(path)
    return 0
