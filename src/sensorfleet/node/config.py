"""The node's configuration: schema, defaults, and where each value comes from.

Precedence, highest first: command-line flag, environment variable, file,
built-in default. Every value from every source is validated by one schema, and
a bad value is reported against the source that set it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import yaml

from .._problems import parse_mapping, read_text
from .._schema import Check, Secret, Strict, as_data, convert, field_names
from ..errors import InputError
from .profiles import BUILTIN_PROFILES, Profiles, deep_merge

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class Simulation(Strict, frozen=True):
    internal: ClassVar[frozenset[str]] = frozenset({"rate_given"})

    readings_per_second: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 1.0
    run_time_seconds: NonNegative | None = None
    seed: int | None = None
    # Whether ``readings_per_second`` was set (file, environment or flag): only then
    # does it override an equipment model's own reading interval.
    rate_given: bool = False

    @classmethod
    def derived(cls, given: frozenset[str]) -> dict[str, Any]:
        return {"rate_given": "readings_per_second" in given}

    @property
    def run_forever(self) -> bool:
        return not self.run_time_seconds


# Readings stay finite however the profiles scale them (see profiles.MAX_FACTOR).
Magnitude = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]


class ParameterRange(Strict, frozen=True):
    mean: Magnitude
    std_dev: Annotated[float, msgspec.Meta(ge=0, le=1e6)]
    min: Magnitude
    max: Magnitude

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(
                f"min must not exceed max (got min={float(self.min)}, max={float(self.max)})"
            )
        if not self.min <= self.mean <= self.max:
            raise ValueError(
                f"mean must lie between min and max (got mean={float(self.mean)}, "
                f"range [{float(self.min)}, {float(self.max)}])"
            )


class NormalParameters(Strict, frozen=True):
    temperature: ParameterRange = ParameterRange(mean=65.0, std_dev=2.0, min=50.0, max=80.0)
    vibration: ParameterRange = ParameterRange(mean=2.5, std_dev=0.5, min=0.1, max=10.0)
    voltage: ParameterRange = ParameterRange(mean=12.0, std_dev=0.1, min=11.5, max=12.5)


class SpikeSettings(Strict, frozen=True):
    enabled: bool = True
    weight: NonNegative = 0.4


class EpisodeSettings(Strict, frozen=True, kw_only=True):
    enabled: bool = True
    weight: NonNegative
    duration_seconds: Positive


class PatternSettings(EpisodeSettings, frozen=True):
    period_seconds: Positive = 60.0


class MissingDataSettings(EpisodeSettings, frozen=True):
    # "null_row" keeps the outage visible to SQL (NULL values, flagged);
    # "skip" writes nothing, like a sensor that really went silent.
    record: Literal["null_row", "skip"] = "null_row"


class AnomalyTypes(Strict, frozen=True):
    spike: SpikeSettings = SpikeSettings()
    trend: EpisodeSettings = EpisodeSettings(weight=0.2, duration_seconds=300)
    pattern: PatternSettings = PatternSettings(weight=0.1, duration_seconds=600)
    missing_data: MissingDataSettings = MissingDataSettings(weight=0.1, duration_seconds=30)
    noise: EpisodeSettings = EpisodeSettings(weight=0.2, duration_seconds=180)


def _probability_range(value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not math.isnan(value) and not 0 <= value <= 1:
        raise ValueError(f"must be between 0 and 1 (got {value})")
    return value


class Anomalies(Strict, frozen=True):
    before: ClassVar[dict[str, Check]] = {"probability": _probability_range}

    enabled: bool = True
    probability: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05
    types: AnomalyTypes = AnomalyTypes()


class Retention(Strict, frozen=True):
    synced_max_age_seconds: Positive | None = None
    max_size_mb: Positive | None = None
    check_interval_seconds: Positive = 60.0


# What ``database.path`` may name in braces, filled per sensor.
PATH_PLACEHOLDERS: tuple[str, ...] = ("sensor_id",)


def _file_path(value: str) -> str:
    if not value.strip():
        raise ValueError(f"must be a file path (got {value!r})")
    # A misspelt placeholder would otherwise become part of the file name.
    rest = value
    for name in PATH_PLACEHOLDERS:
        rest = rest.replace("{" + name + "}", "")
    if "{" in rest or "}" in rest:
        known = ", ".join("{" + name + "}" for name in PATH_PLACEHOLDERS)
        unknown = re.search(r"\{[^{}]*\}", rest)
        what = f"unknown placeholder {unknown[0]}" if unknown else "a brace without its pair"
        raise ValueError(f"{what} in {value!r}; the placeholders are {known}")
    return value


class Database(Strict, frozen=True):
    after: ClassVar[dict[str, Check]] = {"path": _file_path}

    path: str = "data/sensor_data.db"
    journal_mode: Literal["wal", "delete", "truncate", "persist"] = "wal"
    synchronous: Literal["off", "normal", "full", "extra"] = "normal"
    busy_timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 5000
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 5000
    flush_interval_seconds: Positive = 0.2
    retry_attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    max_buffered_rows: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    max_consecutive_failures: Annotated[int, msgspec.Meta(ge=0)] = 300
    retention: Retention = Retention()

    def __post_init__(self) -> None:
        if self.max_buffered_rows < self.batch_size:
            raise ValueError(
                f"max_buffered_rows must be at least batch_size (got {self.max_buffered_rows} "
                f"< {self.batch_size})"
            )


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class Logging(Strict, frozen=True):
    before: ClassVar[dict[str, Check]] = {"level": _upper}

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    file: str | None = "data/sensor_simulator.log"
    console_output: bool = True
    format: Literal["auto", "json", "console"] = "auto"


class ConfigReload(Strict, frozen=True):
    enabled: bool = True
    check_interval_seconds: Positive = 60.0
    # False: poll only, for filesystems that deliver no change events (some
    # network and bind mounts), where a watcher would sit silent.
    watch_events: bool = True
    # When the kernel refuses change events (inotify instances or watches used up by
    # other processes of the same user), how often to ask again while polling.
    events_retry_seconds: Positive = 600.0


def usable_token(value: Secret | None) -> Secret | None:
    """``value`` if it can work as a bearer token; a blank one would switch the guard off.

    Surrounding spaces could never match: HTTP strips them from header values, so every
    request would get 401.
    """
    if value is None:
        return None
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError("must not be empty or only spaces (leave it out for no token)")
    if text != text.strip():
        raise ValueError(
            "must not begin or end with spaces or line breaks (they never reach the node "
            "in an Authorization header)"
        )
    return value


class Monitoring(Strict, frozen=True):
    after: ClassVar[dict[str, Check]] = {"token": usable_token}

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8080
    # POST/DELETE /anomalies need "Authorization: Bearer <token>" when set; GETs stay open.
    token: Secret | None = None
    # False: anomaly control answers 403 (health, metrics and status stay).
    control: bool = True
    # Connections served at once (one thread each); a newcomer beyond it closes the
    # longest idle one. Idle connections are closed after idle_timeout_seconds anyway.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 256
    idle_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0


SecurityPolicy = Literal["None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"]


def _login_text(value: Any) -> Any:
    # `password: 1234` in the file is a YAML number; a login is text either way.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return str(value) if number else value


class OpcUa(Strict, frozen=True):
    """The OPC UA face (``sensorfleet.faces.opcua``); off unless enabled."""

    before: ClassVar[dict[str, Check]] = {"username": _login_text, "password": _login_text}

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 4840
    # Endpoints offered; anything but "None" needs a server certificate and key.
    security_policies: Annotated[list[SecurityPolicy], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["None"]
    )
    certificate: str | None = None
    private_key: str | None = None
    # With both set, clients must log in with them (anonymous access is refused).
    username: str | None = None
    password: Secret | None = None  # shown as '**********' or a fingerprint, never as is

    def __post_init__(self) -> None:
        secured = [p for p in self.security_policies if p != "None"]
        if secured and not (self.certificate and self.private_key):
            raise ValueError(
                f"security_policies {secured} need certificate and private_key "
                "(paths to the server's certificate and key, PEM or DER)"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be set together")


class Modbus(Strict, frozen=True):
    """The Modbus TCP face (``sensorfleet.faces.modbus``); off unless enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 5020


class Equipment(Strict, frozen=True):
    """Equipment models beyond the built-in catalogue."""

    # Catalogue files merged over the built-in one, in order (later files win).
    catalogues: list[str] = msgspec.field(default_factory=list)


def _path_or_null(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError(f"must be a file path or null (got {value!r})")
    return value


class GroundTruth(Strict, frozen=True):
    """Where an equipment row's ground truth goes (state, fault, health, ...)."""

    after: ClassVar[dict[str, Check]] = {"truth_path": _path_or_null}

    # inline: in the row itself; hidden: only in a separate truth file, never in the
    # node's table or any stream.
    mode: Literal["inline", "hidden"] = "inline"
    truth_path: str | None = None  # hidden mode; default NAME.truth.db beside the database


class Config(Strict, frozen=True):
    """The whole validated configuration of one node."""

    simulation: Simulation = Simulation()
    normal_parameters: NormalParameters = NormalParameters()
    anomalies: Anomalies = Anomalies()
    database: Database = Database()
    logging: Logging = Logging()
    config_reload: ConfigReload = ConfigReload()
    monitoring: Monitoring = Monitoring()
    opcua: OpcUa = OpcUa()
    modbus: Modbus = Modbus()
    profiles: Profiles = Profiles()
    equipment: Equipment = Equipment()
    labels: GroundTruth = GroundTruth()

    def warnings(self) -> list[str]:
        """Settings that are valid but almost certainly not what was meant."""
        found = []
        anomalies = self.anomalies
        if anomalies.enabled and anomalies.probability > 0:
            types = anomalies.types
            live = [
                name
                for name in field_names(type(types))
                if getattr(types, name).enabled and getattr(types, name).weight > 0
            ]
            if not live:
                found.append(
                    "anomalies.types: every type is disabled or weighs 0 while anomalies.enabled "
                    "is true: no anomaly can occur (set anomalies.enabled: false if intended)"
                )
        return found

    def digest(self) -> str:
        """A short stable hash of the effective settings (shown in status and logs)."""
        payload = json.dumps(as_data(self, display=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


# Environment variables a container user can set, mapped to config keys.
ENVIRONMENT_KEYS: dict[str, str] = {
    "READINGS_PER_SECOND": "simulation.readings_per_second",
    "RUN_TIME_SECONDS": "simulation.run_time_seconds",
    "SIMULATION_SEED": "simulation.seed",
    "ANOMALIES_ENABLED": "anomalies.enabled",
    "ANOMALY_PROBABILITY": "anomalies.probability",
    "DATABASE_PATH": "database.path",
    "DATABASE_JOURNAL_MODE": "database.journal_mode",
    "LOG_LEVEL": "logging.level",
    "LOG_FILE": "logging.file",
    "LOG_FORMAT": "logging.format",
    "CONFIG_RELOAD_ENABLED": "config_reload.enabled",
    "CONFIG_RELOAD_WATCH_EVENTS": "config_reload.watch_events",
    "MONITORING_ENABLED": "monitoring.enabled",
    "MONITORING_HOST": "monitoring.host",
    "MONITORING_PORT": "monitoring.port",
    "MONITORING_TOKEN": "monitoring.token",
    "MONITORING_CONTROL": "monitoring.control",
    "OPCUA_ENABLED": "opcua.enabled",
    "OPCUA_HOST": "opcua.host",
    "OPCUA_PORT": "opcua.port",
    "OPCUA_USERNAME": "opcua.username",
    "OPCUA_PASSWORD": "opcua.password",
    "MODBUS_ENABLED": "modbus.enabled",
    "MODBUS_HOST": "modbus.host",
    "MODBUS_PORT": "modbus.port",
}

# Variables taken as text exactly as given (a token of digits is still text).
_TEXT_VARIABLES = frozenset({"MONITORING_TOKEN", "OPCUA_USERNAME", "OPCUA_PASSWORD"})
# Variables whose empty value means "none" rather than "not set".
_EMPTY_MEANS_NONE = frozenset({"LOG_FILE"})
# An empty token is validated (and refused), never taken as "not set": `-e MONITORING_TOKEN=`
# from a variable that failed to expand would otherwise switch authentication off unnoticed.
_EMPTY_IS_A_VALUE = frozenset({"MONITORING_TOKEN"})

_MERGED_DEFAULTS: dict[str, dict[str, Any]] = {
    "anomalies.types": as_data(AnomalyTypes()),
    "profiles": BUILTIN_PROFILES,
}

# Keys whose relative paths are read against the config file's folder.
_PATH_KEYS = (
    "database.path",
    "logging.file",
    "opcua.certificate",
    "opcua.private_key",
    "labels.truth_path",
    "equipment.catalogues",
)


@dataclass(frozen=True)
class Override:
    """One value set outside the config file, and who set it (for error messages)."""

    key: str
    value: Any
    source: str


def environment_overrides(environ: Mapping[str, str] | None = None) -> list[Override]:
    """Overrides from environment variables; values are read as YAML scalars."""
    env = os.environ if environ is None else environ
    found = []
    for name, key in ENVIRONMENT_KEYS.items():
        if name not in env:
            continue
        text = env[name]
        if text == "" and name not in _EMPTY_IS_A_VALUE:
            if name in _EMPTY_MEANS_NONE:
                found.append(Override(key, None, f"environment {name}"))
            continue
        value = text if name in _TEXT_VARIABLES else _scalar(text)
        found.append(Override(key, value, f"environment {name}"))
    return found


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def build_config(
    raw: Mapping[str, Any],
    source: str,
    overrides: list[Override] | tuple[Override, ...] = (),
    base_dir: Path | None = None,
) -> Config:
    """Validate file contents plus overrides into a ``Config``.

    Relative paths from the file are taken against ``base_dir`` (the config
    file's folder); relative paths from flags or the environment against the
    working directory, as a user typing them would expect.
    """
    data: dict[str, Any] = json.loads(json.dumps(raw, default=str)) if raw else {}
    if base_dir is not None:
        for key in _PATH_KEYS:
            value = _get(data, key)
            if isinstance(value, str):
                _set(data, key, _relative_to(base_dir, value))
            elif isinstance(value, list):
                _set(data, key, [_relative_to(base_dir, v) for v in value])
    # Sections whose entries differ in their defaults are merged key by key, so
    # `noise: {enabled: false}` keeps noise's weight and duration.
    for key, defaults in _MERGED_DEFAULTS.items():
        section, _, sub = key.partition(".")
        parent = data.get(section) if sub else data
        if isinstance(parent, dict):
            name = sub or section
            given = parent.get(name)
            if given is None or isinstance(given, dict):
                parent[name] = deep_merge(defaults, given or {})
    owners: dict[str, str] = {}
    for override in overrides:
        _set(data, override.key, override.value)
        owners[override.key] = override.source
    config, problems = convert(Config, data)
    if config is None:
        lines = []
        for dotted, problem in problems:
            owner = next((s for k, s in owners.items() if dotted.startswith(k)), source)
            lines.append(f"{owner}: {dotted}: {problem}")
        raise InputError(lines)
    return config


def _relative_to(base_dir: Path, value: Any) -> Any:
    if isinstance(value, str) and value.strip() and not os.path.isabs(value):
        return str(base_dir / value)
    return value


def load_config(path: str | None, overrides: list[Override] | tuple[Override, ...] = ()) -> Config:
    """Read and validate a config file (or the defaults when ``path`` is None)."""
    if path is None:
        return build_config({}, "defaults", overrides, base_dir=Path.cwd())
    raw = parse_mapping(path, read_text(path, "config"), "YAML")
    # The folder the user named, not where a symlink leads: a Kubernetes ConfigMap
    # file points into a timestamped folder that changes with every update.
    return build_config(raw, path, overrides, base_dir=Path(os.path.abspath(path)).parent)
