"""``sensorfleet identities``: write a fleet's ``node_identity.json`` files (or a ConfigMap)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fleet import (
    DEFAULT_FIRMWARE_MIX,
    NamedIdentity,
    demo_identities,
    generate_identities,
    numbered,
    parse_firmware_mix,
    parse_types,
    render_configmap,
    typed_identities,
    write_identities,
)
from ..node.config import load_config
from ..node.inputs import DEFAULT_CONFIG, NodeInputs
from ..node.layout import CLASSIC


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "identities",
        help="generate identity files for a fleet (the demo 15, --count N, --types, --site)",
        description=(
            "Write one identity JSON file per sensor: the original demo fleet of 15 "
            "(factory firmware 1.3 and 1.4, warehouse, outdoor), a reproducible mix "
            "of --count sensors, machines of --types, or the machines of a --site file. "
            "Prints the path of each file written."
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
    which.add_argument(
        "--site",
        metavar="FILE",
        help="the machines of a site file (YAML: factories, their lines, and on each line "
        "a count of machines of each type); see docs/containers.md",
    )
    parser.add_argument(
        "--types",
        metavar="TYPES",
        help="machines by type as TYPE=COUNT pairs (compressor=5,hvac=2); with --count N "
        "the counts are proportions of N",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="with --count, --types or --site: seed of the mix (default: 0)",
    )
    parser.add_argument(
        "--firmware-mix",
        metavar="MIX",
        default=",".join(f"{v}={w}" for v, w in DEFAULT_FIRMWARE_MIX.items()),
        help="firmware versions and their weights of a generated fleet (default: %(default)s)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"config whose equipment.catalogues add types for --types and --site (default: "
        f"$CONFIG_FILE, else ./{DEFAULT_CONFIG} if present, else the built-in catalogue)",
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


def known_types(config_path: str | None) -> list[str]:
    """The types an identity may name: the classic sensor and every catalogue model."""
    from ..equipment import load_catalogue

    inputs = NodeInputs.locate(config_path)
    config = load_config(inputs.config_path, inputs.config_overrides)
    return [CLASSIC.type_name, *load_catalogue(config.equipment.catalogues).names()]


def build_fleet(args: argparse.Namespace) -> list[NamedIdentity]:
    """The fleet the options ask for."""
    if args.site is not None:
        from ..site import load_site, site_identities

        if args.types is not None:
            raise InputError(["--types: not with --site (the site file gives the types)"])
        site = load_site(args.site, known_types(args.config))
        return site_identities(site, args.seed, parse_firmware_mix(args.firmware_mix))
    if args.types is not None:
        types = parse_types(args.types, known_types(args.config), args.count)
        return typed_identities(types, args.seed, parse_firmware_mix(args.firmware_mix))
    if args.count is not None:
        return generate_identities(args.count, args.seed, parse_firmware_mix(args.firmware_mix))
    return demo_identities()


def handle(args: argparse.Namespace) -> int:
    fleet = build_fleet(args)
    if args.configmap:
        sys.stdout.write(render_configmap(fleet, args.configmap, args.numbered or 0))
        return 0
    if args.numbered is not None:
        fleet = numbered(fleet, args.numbered)
    for path in write_identities(fleet, Path(args.output_dir)):
        print(path)
    return 0
