"""Site files: factories → lines → machines, expanded into a fleet's identities.

A site file says where the machines are and how many of each type stand on each line:

    factories:
      - name: Factory A
        timezone: Europe/Berlin          # optional, default UTC
        lines:
          - name: Line 1
            machines:
              - {type: compressor, count: 2}
              - {type: motor, count: 3}

Each machine's location is ``<factory> - <line>`` (so the report's per-location
breakdowns and the location profiles apply) and its id ``<FACTORY>_<LINE>_<TYPE>_<n>``.
Parsing is pure (text in, frozen objects out); ``load_site`` is the thin file wrapper.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator

from ._problems import parse_mapping, read_text
from ._pydantic import Strict, validate
from .errors import InputError
from .fleet import DEFAULT_FIRMWARE_MIX, NamedIdentity, placed_identity
from .node.identity import known_timezone

MAX_MACHINES = 100_000  # in one site file: the fleet script starts a container for each

Name = Annotated[str, Field(min_length=1, max_length=80)]


class _Strict(Strict):
    """A section of a site file: strict, with names trimmed of surrounding spaces."""

    model_config = ConfigDict(str_strip_whitespace=True)  # merged with Strict's


class Machines(_Strict):
    """``count`` machines of one ``type`` on a line."""

    type: Name
    count: int = Field(ge=1, le=MAX_MACHINES)


class Line(_Strict):
    """A production line and the machines on it."""

    name: Name
    machines: list[Machines] = Field(min_length=1)


class Factory(_Strict):
    """A factory: its lines, and the time zone its machines' days follow."""

    name: Name
    timezone: str = "UTC"
    lines: list[Line] = Field(min_length=1)

    _known_zone = field_validator("timezone")(known_timezone)


class Site(_Strict):
    """A site file: one or more factories."""

    factories: list[Factory] = Field(min_length=1)


def slug(name: str) -> str:
    """``Factory A`` → ``FACTORY_A``: the part of a sensor id a name gives."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "_"


def parse_site(source: str, text: str, known_types: Sequence[str]) -> Site:
    """Validate a site file's text; every problem names ``source`` and the key."""
    site: Site = validate(source, Site, parse_mapping(source, text, "YAML"))
    problems = []
    total = 0
    factories: dict[str, int] = {}
    for f, factory in enumerate(site.factories):
        where = f"{source}: factories[{f}]"
        other = factories.setdefault(slug(factory.name), f)
        if other != f:
            problems.append(
                f"{where}.name: {factory.name!r} gives the same sensor ids as "
                f"factories[{other}]; expected names that differ in letters or digits"
            )
        lines: dict[str, int] = {}
        for n, line in enumerate(factory.lines):
            other = lines.setdefault(slug(line.name), n)
            if other != n:
                problems.append(
                    f"{where}.lines[{n}].name: {line.name!r} gives the same sensor ids as "
                    f"lines[{other}]; expected names that differ in letters or digits"
                )
            for m, machines in enumerate(line.machines):
                total += machines.count
                if machines.type not in known_types:
                    problems.append(
                        f"{where}.lines[{n}].machines[{m}].type: unknown type "
                        f"{machines.type!r}; expected one of {', '.join(known_types)}"
                    )
    if total > MAX_MACHINES:
        problems.append(
            f"{source}: factories: {total} machines in all; expected at most {MAX_MACHINES}"
        )
    if problems:
        raise InputError(problems)
    return site


def load_site(path: str, known_types: Sequence[str]) -> Site:
    """Read and validate a site file."""
    return parse_site(path, read_text(path, "site"), known_types)


def site_identities(
    site: Site, seed: int = 0, firmware_mix: Mapping[str, float] = DEFAULT_FIRMWARE_MIX
) -> list[NamedIdentity]:
    """One identity per machine, in the file's order, numbered per type on each line."""
    fleet = []
    for factory in site.factories:
        for line in factory.lines:
            numbers: dict[str, int] = {}
            for machines in line.machines:
                for _ in range(machines.count):
                    number = numbers[machines.type] = numbers.get(machines.type, 0) + 1
                    sensor_id = (
                        f"{slug(factory.name)}_{slug(line.name)}_{slug(machines.type)}_{number}"
                    )
                    identity = placed_identity(
                        seed,
                        sensor_id,
                        machines.type,
                        f"{factory.name} - {line.name}",
                        factory.timezone,
                        firmware_mix,
                    )
                    fleet.append(NamedIdentity(sensor_id.lower(), identity))
    return fleet
