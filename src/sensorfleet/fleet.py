"""Fleets of sensor identities: the original demo's 15 sensors, or a seeded mix of any size.

Generation is pure: it returns named, validated identities and never touches the
disk. ``write_identities`` and ``render_configmap`` turn them into the files the
fleet script, the Compose file and the orchestrator manifests mount.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._schema import validate
from .errors import InputError
from .node.identity import Identity

SENSOR_TYPE = "temperature_vibration"
FIRMWARE_VERSIONS = ("1.3", "1.4")
MANUFACTURERS = ("SensorTech", "DataSense", "VibrationPlus")
MODELS = ("TempVibe-1000", "TempVibe-2000", "TempVibe-3000")


@dataclass(frozen=True)
class NamedIdentity:
    """An identity with the file stem it is written under (``factory_old_1``)."""

    name: str
    identity: Identity


def _identity(**fields: str) -> Identity:
    return validate("identity", Identity, {"type": SENSOR_TYPE, **fields})


def demo_identities() -> list[NamedIdentity]:
    """The original demo fleet: 15 sensors in a factory, a warehouse and outdoors.

    Ten factory sensors on one line each, half on firmware 1.3 and half on 1.4 so the
    two can be compared like for like; three warehouse sensors, one of each model; two
    outdoor sensors in a time zone with a strong daily cycle.
    """
    fleet: list[NamedIdentity] = []
    for firmware, age in (("1.3", "OLD"), ("1.4", "NEW")):
        for line in range(1, 6):
            fleet.append(
                NamedIdentity(
                    f"factory_{age.lower()}_{line}",
                    _identity(
                        id=f"FACTORY_{line}_{age}",
                        location=f"Factory A - Line {line}",
                        manufacturer="SensorTech",
                        model="TempVibe-2000",
                        firmware_version=firmware,
                    ),
                )
            )
    for section in range(1, 4):
        fleet.append(
            NamedIdentity(
                f"warehouse_{section}",
                _identity(
                    id=f"WAREHOUSE_{section}",
                    location=f"Warehouse B - Section {section}",
                    manufacturer="DataSense",
                    model=f"TempVibe-{section}000",
                    firmware_version="1.3",
                ),
            )
        )
    for area in range(1, 3):
        fleet.append(
            NamedIdentity(
                f"outdoor_{area}",
                _identity(
                    id=f"OUTDOOR_{area}",
                    location=f"Outdoor - Area {area}",
                    manufacturer="VibrationPlus",
                    model="TempVibe-3000",
                    firmware_version="1.4",
                    timezone="America/Chicago",
                ),
            )
        )
    return fleet


@dataclass(frozen=True)
class _Site:
    """What a kind of site looks like: where its sensors are and who makes them."""

    kind: str
    share: float
    location: str  # formatted with the site letter and a position number
    positions: int
    manufacturers: Mapping[str, float]
    models: Mapping[str, float]
    timezone: str


_SITES = (
    _Site(
        "factory",
        0.6,
        "Factory {letter} - Line {position}",
        12,
        {"SensorTech": 0.6, "DataSense": 0.25, "VibrationPlus": 0.15},
        {"TempVibe-2000": 0.6, "TempVibe-1000": 0.2, "TempVibe-3000": 0.2},
        "UTC",
    ),
    _Site(
        "warehouse",
        0.25,
        "Warehouse {letter} - Section {position}",
        8,
        {"DataSense": 0.6, "SensorTech": 0.3, "VibrationPlus": 0.1},
        {"TempVibe-1000": 1.0, "TempVibe-2000": 1.0, "TempVibe-3000": 1.0},
        "UTC",
    ),
    _Site(
        "outdoor",
        0.15,
        "Outdoor {letter} - Area {position}",
        6,
        {"VibrationPlus": 0.6, "SensorTech": 0.2, "DataSense": 0.2},
        {"TempVibe-3000": 0.7, "TempVibe-2000": 0.3},
        "America/Chicago",
    ),
)

DEFAULT_FIRMWARE_MIX: Mapping[str, float] = {"1.3": 0.5, "1.4": 0.5}


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _check_firmware_mix(firmware_mix: Mapping[str, float]) -> None:
    weights = list(firmware_mix.values())
    if not weights or min(weights) < 0 or not any(weights):
        raise InputError(["--firmware-mix: expected positive weights such as 1.3=0.7,1.4=0.3"])


def _draw_sensor(
    rng: random.Random,
    sensor_id: str,
    site: _Site,
    firmware_mix: Mapping[str, float],
    **fields: str,
) -> Identity:
    """One sensor at a random position of ``site``, with the site's maker and model mix.

    The order of the draws is fixed: a seeded fleet generated before stays the same.
    """
    letter = rng.choice("ABCD")
    position = rng.randint(1, site.positions)
    return _identity(
        id=sensor_id,
        location=site.location.format(letter=letter, position=position),
        manufacturer=_pick(rng, site.manufacturers),
        model=_pick(rng, site.models),
        firmware_version=_pick(rng, firmware_mix),
        timezone=site.timezone,
        **fields,
    )


def generate_identities(
    count: int,
    seed: int = 0,
    firmware_mix: Mapping[str, float] = DEFAULT_FIRMWARE_MIX,
) -> list[NamedIdentity]:
    """A reproducible mixed fleet of ``count`` sensors.

    Sensors are drawn one after another from one seeded generator, so the first N of
    a larger fleet are the N of a smaller one with the same seed: growing a fleet
    keeps the identities that already exist.
    """
    if count < 1:
        raise InputError([f"--count: expected a number of sensors of 1 or more (got {count})"])
    _check_firmware_mix(firmware_mix)
    rng = random.Random(seed)
    width = max(4, len(str(count)))
    shares = {site.kind: site.share for site in _SITES}
    sites = {site.kind: site for site in _SITES}
    fleet = []
    for number in range(1, count + 1):
        site = sites[_pick(rng, shares)]
        sensor_id = f"{site.kind.upper()}_{number:0{width}d}"
        fleet.append(
            NamedIdentity(sensor_id.lower(), _draw_sensor(rng, sensor_id, site, firmware_mix))
        )
    return fleet


def sensor_rng(seed: int, sensor_id: str) -> random.Random:
    """A generator of its own for one sensor: adding or removing other sensors (more of
    one type, a new line in a site file) leaves this sensor's identity as it was."""
    return random.Random(f"{seed}/{sensor_id}")


def typed_identities(
    types: Mapping[str, int],
    seed: int = 0,
    firmware_mix: Mapping[str, float] = DEFAULT_FIRMWARE_MIX,
) -> list[NamedIdentity]:
    """A reproducible fleet of machines: ``types`` maps each type to how many of it.

    Ids count per type (``COMPRESSOR_0001``…); each sensor draws its site, maker, model
    and firmware from the classic generator's mix with a generator seeded by its id, so
    five compressors stay the same five when the fleet gains fans or compressors.
    """
    _check_firmware_mix(firmware_mix)
    shares = {site.kind: site.share for site in _SITES}
    sites = {site.kind: site for site in _SITES}
    width = max(4, len(str(max(types.values(), default=1))))
    fleet = []
    for type_name, count in types.items():
        for number in range(1, count + 1):
            sensor_id = f"{type_name.upper()}_{number:0{width}d}"
            rng = sensor_rng(seed, sensor_id)
            site = sites[_pick(rng, shares)]
            identity = _draw_sensor(rng, sensor_id, site, firmware_mix, type=type_name)
            fleet.append(NamedIdentity(sensor_id.lower(), identity))
    return fleet


def placed_identity(
    seed: int,
    sensor_id: str,
    type_name: str,
    location: str,
    timezone: str = "UTC",
    firmware_mix: Mapping[str, float] = DEFAULT_FIRMWARE_MIX,
) -> Identity:
    """A sensor at a known place (a site file's line) with the factory maker, model and
    firmware mix, drawn with a generator seeded by its id."""
    rng = sensor_rng(seed, sensor_id)
    factory = _SITES[0]
    return _identity(
        id=sensor_id,
        type=type_name,
        location=location,
        manufacturer=_pick(rng, factory.manufacturers),
        model=_pick(rng, factory.models),
        firmware_version=_pick(rng, firmware_mix),
        timezone=timezone,
    )


def parse_types(text: str, known: Sequence[str], total: int | None = None) -> dict[str, int]:
    """Read ``compressor=5,hvac=2`` into type → number of sensors.

    With ``total`` the numbers are proportions: they are scaled to ``total`` sensors
    (largest remainder, ties to the type named first), so ``--count 70`` with
    ``compressor=5,hvac=2`` gives 50 and 20.
    """
    counts: dict[str, int] = {}
    for part in text.split(","):
        name, sep, number = (item.strip() for item in part.partition("="))
        if not sep or not name or not number.isdigit():
            raise InputError(
                [f"--types: expected TYPE=COUNT pairs such as compressor=5,hvac=2 (got {text!r})"]
            )
        if name not in known:
            raise InputError(
                [f"--types: unknown type {name!r}; expected one of {', '.join(known)}"]
            )
        counts[name] = counts.get(name, 0) + int(number)
    if not any(counts.values()):
        raise InputError([f"--types: expected at least one sensor (got {text!r})"])
    if total is None:
        return counts
    if total < 1:
        raise InputError([f"--count: expected a number of sensors of 1 or more (got {total})"])
    weight = sum(counts.values())
    scaled = {name: count * total / weight for name, count in counts.items()}
    shares = {name: int(value) for name, value in scaled.items()}
    by_remainder = sorted(scaled, key=lambda name: shares[name] - scaled[name])
    for name in by_remainder[: total - sum(shares.values())]:
        shares[name] += 1
    return {name: count for name, count in shares.items() if count}


def parse_firmware_mix(text: str) -> dict[str, float]:
    """Read ``1.3=0.7,1.4=0.3`` into firmware version → weight."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        version, sep, weight = part.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not version.strip() or value < 0:
            expected = "expected VERSION=WEIGHT pairs such as 1.3=0.7,1.4=0.3"
            raise InputError([f"--firmware-mix: {expected} (got {text!r})"])
        mix[version.strip()] = value
    return mix


def identity_document(identity: Identity) -> dict[str, Any]:
    """The JSON object of ``node_identity.json``; defaults that say nothing are left out."""
    document: dict[str, Any] = {
        "id": identity.id,
        "type": identity.type,
        "location": identity.location,
        "manufacturer": identity.manufacturer,
        "model": identity.model,
        "firmware_version": identity.firmware_version,
    }
    if identity.timezone != "UTC":
        document["timezone"] = identity.timezone
    if identity.tags:
        document["tags"] = dict(identity.tags)
    return document


def render_identity(identity: Identity) -> str:
    """``node_identity.json`` text, formatted as the sample files are."""
    return json.dumps(identity_document(identity), indent=2, ensure_ascii=False) + "\n"


def numbered(fleet: Sequence[NamedIdentity], first: int) -> list[NamedIdentity]:
    """The same fleet named by position (``1``, ``2``, …) for slot- or index-based lookup.

    Docker Swarm numbers a service's tasks from 1 (``{{.Task.Slot}}``), a Kubernetes
    StatefulSet its pods from 0, so each can find its identity as ``<number>.json``.
    """
    return [NamedIdentity(str(first + i), item.identity) for i, item in enumerate(fleet)]


def write_identities(fleet: Iterable[NamedIdentity], directory: Path) -> list[Path]:
    """Write one ``<name>.json`` per identity into ``directory``; return the paths.

    An unchanged file is left alone and a changed one is rewritten in place rather
    than replaced: a running container that bind-mounts the file keeps seeing it
    (a bind mount follows the inode, which a rename would swap out).
    """
    fleet = list(fleet)
    names = [item.name for item in fleet]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError([f"identities: file names used twice: {', '.join(duplicates)}"])
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = f"{directory}: cannot create the output folder: {exc.strerror}"
        raise InputError([problem]) from None
    paths = []
    for item in fleet:
        path = directory / f"{item.name}.json"
        text = render_identity(item.identity)
        try:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                with path.open("w", encoding="utf-8") as handle:
                    handle.write(text)
        except OSError as exc:
            raise InputError([f"{path}: cannot write the identity file: {exc.strerror}"]) from None
        paths.append(path)
    return paths


def render_configmap(fleet: Sequence[NamedIdentity], name: str, first: int = 0) -> str:
    """A Kubernetes ConfigMap holding the fleet as ``<index>.json`` keys (pod index order)."""
    data = {f"{item.name}.json": render_identity(item.identity) for item in numbered(fleet, first)}
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "sensorfleet"}},
        "data": data,
    }
    return yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks so the JSON stays readable."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_text)
