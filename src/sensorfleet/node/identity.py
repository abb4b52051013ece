"""Who a node is: its ``node_identity.json``, validated, plus environment overrides.

A container started with nothing mounted still has an identity: the built-in
default, with ``SENSOR_ID``/``SENSOR_LOCATION``/… applied on top, exactly as the
original ``docker run -e SENSOR_ID=… -e SENSOR_LOCATION=…`` usage expects.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import msgspec

from .._problems import parse_mapping, read_text
from .._schema import Check, Strict, as_data, validate
from ..errors import InputError


def _text(value: Any) -> Any:
    # JSON writers often emit firmware 1.4 as a number; accept it as the text "1.4".
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _stripped(value)


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def known_timezone(value: str) -> str:
    """``value`` if it names an IANA time zone; a ValueError saying what is expected if not."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"must be an IANA time zone such as 'Europe/Berlin' (got {value!r})"
        ) from None
    return value


Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_LABELS = ("id", "type", "location", "manufacturer", "model", "firmware_version")


class Identity(Strict, frozen=True, kw_only=True):
    """One sensor's identity; every field is written on each of its rows."""

    before: ClassVar[dict[str, Check]] = {
        **dict.fromkeys(_LABELS, _text),
        "timezone": _stripped,
    }
    after: ClassVar[dict[str, Check]] = {"timezone": known_timezone}

    id: Label
    type: Label = "temperature_vibration"
    location: Label
    manufacturer: Label
    model: Label
    firmware_version: Label
    timezone: str = "UTC"
    tags: dict[str, str] = msgspec.field(default_factory=dict)

    def with_changes(self, **changes: str) -> Identity:
        """A validated copy with some fields replaced."""
        return validate("identity", Identity, {**as_data(self), **changes})


DEFAULT_IDENTITY: dict[str, Any] = {
    "id": "SENSOR_001",
    "type": "temperature_vibration",
    "location": "Factory A - Line 1",
    "manufacturer": "SensorTech",
    "model": "TempVibe-2000",
    "firmware_version": "1.3",
}

# Environment variables that override identity fields.
ENVIRONMENT_FIELDS: dict[str, str] = {
    "SENSOR_ID": "id",
    "SENSOR_TYPE": "type",
    "SENSOR_LOCATION": "location",
    "SENSOR_MANUFACTURER": "manufacturer",
    "SENSOR_MODEL": "model",
    "SENSOR_FIRMWARE_VERSION": "firmware_version",
    "SENSOR_TIMEZONE": "timezone",
}


def environment_identity(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Identity fields set through the environment."""
    env = os.environ if environ is None else environ
    return {field: env[name] for name, field in ENVIRONMENT_FIELDS.items() if env.get(name)}


def build_identity(raw: Mapping[str, Any], source: str, overrides: Mapping[str, str]) -> Identity:
    """Validate identity data with overrides applied; errors name ``source``."""
    return validate(source, Identity, {**raw, **overrides})


def load_identity(path: str | None, overrides: Mapping[str, str] | None = None) -> Identity:
    """Read ``node_identity.json`` (or use the built-in default when ``path`` is None)."""
    extra = dict(overrides or {})
    if path is None:
        return build_identity(DEFAULT_IDENTITY, "default identity", extra)
    raw = parse_mapping(path, read_text(path, "identity"), "JSON")
    return build_identity(raw, path, extra)


def load_identities(paths: list[str], overrides: Mapping[str, str] | None = None) -> list[Identity]:
    """Load several identity files; all problems are reported together."""
    identities, problems = [], []
    for path in paths:
        try:
            identities.append(load_identity(path, overrides))
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    seen: dict[str, str] = {}
    for path, identity in zip(paths, identities, strict=True):
        if identity.id in seen:
            problems.append(
                f"{path}: id: duplicates the id of {seen[identity.id]} ({identity.id!r})"
            )
        seen[identity.id] = path
    if problems:
        raise InputError(problems)
    return identities
