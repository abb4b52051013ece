"""Behaviour tables for firmware, manufacturer, model and location, held as data.

The values documented for the original simulator are built in; a user's
``profiles`` section is merged over them key by key, so adding firmware "1.5"
or a new manufacturer, or tuning one knob of "1.3", needs no code change.
``resolve`` folds the tables into one frozen ``Behaviour`` for an identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Protocol

import msgspec

from .._schema import Check, Strict

PARAMETERS: tuple[str, ...] = ("temperature", "vibration", "voltage")
ANOMALY_TYPES: tuple[str, ...] = ("spike", "trend", "pattern", "missing_data", "noise")

AnomalyTypeName = Literal["spike", "trend", "pattern", "missing_data", "noise"]
ParameterName = Literal["temperature", "vibration", "voltage"]
# Bounds that keep every reading finite: at most 1e6 (normal parameters) × 100 (spike
# factor) × 100 (severity) stays far from float overflow.
Multiplier = Annotated[float, msgspec.Meta(ge=0, le=100)]
Weight = Annotated[float, msgspec.Meta(ge=0, le=1e6)]
MAX_FACTOR = 100.0


def _ordered_factor(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if not 1.0 <= low <= high <= MAX_FACTOR:
        raise ValueError(
            f"must be [low, high] with 1 <= low <= high <= {MAX_FACTOR:.0f} (got [{low}, {high}])"
        )
    return value


def _some_weight(value: dict[ParameterName, float]) -> dict[ParameterName, float]:
    # Parameters left out weigh 1; all of them at 0 would leave a spike nowhere to go.
    if len(value) == len(PARAMETERS) and not any(value.values()):
        raise ValueError("at least one parameter needs a weight above 0 (all are 0)")
    return value


def _hours(value: tuple[int, int]) -> tuple[int, int]:
    start, end = value
    if not (0 <= start <= 24 and 0 <= end <= 24 and start < end):
        raise ValueError(f"must be [start, end] hours with 0 <= start < end <= 24 (got {value})")
    return value


def _equal_weights() -> dict[ParameterName, float]:
    return {"temperature": 1.0, "vibration": 1.0, "voltage": 1.0}


class FirmwareProfile(Strict, frozen=True):
    """How a firmware version changes anomaly frequency and severity."""

    after: ClassVar[dict[str, Check]] = {
        "spike_factor": _ordered_factor,
        "parameter_weights": _some_weight,
    }

    probability_multiplier: Multiplier = 1.0
    spike_factor: tuple[float, float] = (1.5, 3.0)
    noise_factor: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.10
    voltage_std_multiplier: Multiplier = 1.0
    parameter_weights: dict[ParameterName, Weight] = msgspec.field(default_factory=_equal_weights)


class ManufacturerProfile(Strict, frozen=True):
    """How a manufacturer's build quality changes anomalies."""

    probability_multiplier: Multiplier = 1.0
    severity_multiplier: Annotated[float, msgspec.Meta(gt=0, le=MAX_FACTOR)] = 1.0
    vibration_noise_multiplier: Multiplier = 1.0


class ModelProfile(Strict, frozen=True):
    """How a hardware model shifts the mix of anomaly types."""

    type_weight_multipliers: dict[AnomalyTypeName, Weight] = msgspec.field(default_factory=dict)


class LocationProfile(Strict, frozen=True):
    """Environmental effects of where a sensor is installed.

    A location profile applies when its key appears (case-insensitively) in the
    identity's ``location``; the first matching key wins.
    """

    after: ClassVar[dict[str, Check]] = {"work_hours": _hours}

    work_hours: tuple[int, int] = (8, 18)
    work_hours_temperature_offset_sd: Annotated[
        float, msgspec.Meta(ge=-MAX_FACTOR, le=MAX_FACTOR)
    ] = 0.0
    temperature_std_multiplier: Multiplier = 1.0
    daily_amplitude_multiplier: Multiplier = 1.0
    vibration_std_multiplier: Multiplier = 1.0


class Profiles(Strict, frozen=True):
    """All behaviour tables, keyed by firmware version, manufacturer, model, location."""

    firmware: dict[str, FirmwareProfile] = msgspec.field(default_factory=dict)
    manufacturers: dict[str, ManufacturerProfile] = msgspec.field(default_factory=dict)
    models: dict[str, ModelProfile] = msgspec.field(default_factory=dict)
    locations: dict[str, LocationProfile] = msgspec.field(default_factory=dict)


# The documented behaviour of the original simulator, as data.
BUILTIN_PROFILES: dict[str, Any] = {
    "firmware": {
        "1.3": {
            "probability_multiplier": 1.5,
            "spike_factor": [1.8, 3.5],
            "noise_factor": 0.15,
            "voltage_std_multiplier": 1.5,
            "parameter_weights": {"temperature": 0.6, "vibration": 0.2, "voltage": 0.2},
        },
        "1.4": {
            "probability_multiplier": 0.7,
            "spike_factor": [1.5, 3.0],
            "noise_factor": 0.10,
            "voltage_std_multiplier": 0.8,
        },
    },
    "manufacturers": {
        "SensorTech": {"probability_multiplier": 1.0},
        "DataSense": {"probability_multiplier": 0.8, "severity_multiplier": 1.3},
        "VibrationPlus": {"probability_multiplier": 1.2, "vibration_noise_multiplier": 1.5},
    },
    "models": {
        "TempVibe-1000": {"type_weight_multipliers": {"missing_data": 2.0}},
        "TempVibe-2000": {"type_weight_multipliers": {"pattern": 1.5}},
        "TempVibe-3000": {"type_weight_multipliers": {"spike": 1.5}},
    },
    "locations": {
        "Factory": {"work_hours": [8, 18], "work_hours_temperature_offset_sd": 1.5},
        "Warehouse": {
            "temperature_std_multiplier": 0.5,
            "daily_amplitude_multiplier": 0.5,
            "vibration_std_multiplier": 1.5,
        },
        "Outdoor": {"daily_amplitude_multiplier": 2.5, "temperature_std_multiplier": 1.2},
    },
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in, recursing into mappings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Behaviour:
    """Everything the generator needs to know about one identity's quirks."""

    probability_multiplier: float
    severity: float
    spike_factor: tuple[float, float]
    noise_factor: float
    vibration_noise_multiplier: float
    voltage_std_multiplier: float
    parameter_weights: tuple[float, float, float]
    type_weight_multipliers: dict[str, float]
    location: LocationProfile
    unknown: tuple[str, ...] = ()


class ProfileKeys(Protocol):
    """The identity fields the behaviour tables are keyed by."""

    @property
    def firmware_version(self) -> str: ...
    @property
    def manufacturer(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def location(self) -> str: ...


def behaviour_of(profiles: Profiles, identity: ProfileKeys) -> Behaviour:
    """``resolve`` for anything carrying the four identity fields."""
    return resolve(
        profiles,
        firmware_version=identity.firmware_version,
        manufacturer=identity.manufacturer,
        model=identity.model,
        location=identity.location,
    )


def _location_profile(profiles: Profiles, location: str) -> LocationProfile | None:
    lowered = location.lower()
    for key, profile in profiles.locations.items():
        if key.lower() in lowered:
            return profile
    return None


def resolve(
    profiles: Profiles, *, firmware_version: str, manufacturer: str, model: str, location: str
) -> Behaviour:
    """Fold the tables into one behaviour; unknown names behave neutrally.

    ``Behaviour.unknown`` lists the names that matched no table so the caller
    can warn once.
    """
    unknown = []
    firmware = profiles.firmware.get(firmware_version)
    if firmware is None:
        unknown.append(f"firmware_version {firmware_version!r}")
        firmware = FirmwareProfile()
    maker = profiles.manufacturers.get(manufacturer)
    if maker is None:
        unknown.append(f"manufacturer {manufacturer!r}")
        maker = ManufacturerProfile()
    hardware = profiles.models.get(model)
    if hardware is None:
        unknown.append(f"model {model!r}")
        hardware = ModelProfile()
    given: dict[str, float] = {str(k): v for k, v in firmware.parameter_weights.items()}
    weights = [given.get(p, 1.0) for p in PARAMETERS]
    total = sum(weights) or 1.0
    return Behaviour(
        probability_multiplier=firmware.probability_multiplier * maker.probability_multiplier,
        severity=maker.severity_multiplier,
        spike_factor=firmware.spike_factor,
        noise_factor=firmware.noise_factor,
        vibration_noise_multiplier=maker.vibration_noise_multiplier,
        voltage_std_multiplier=firmware.voltage_std_multiplier,
        parameter_weights=(weights[0] / total, weights[1] / total, weights[2] / total),
        type_weight_multipliers={str(k): v for k, v in hardware.type_weight_multipliers.items()},
        location=_location_profile(profiles, location) or LocationProfile(),
        unknown=tuple(unknown),
    )
