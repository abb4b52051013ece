"""The monitor's per-sensor resources: what a sensor is doing, and machine control.

    GET    /sensors                      every sensor: id, type, table, state, health, fault
    GET    /sensors/{id}                 one sensor: identity, state, health, active fault,
                                         its last reading
    POST   /sensors/{id}/faults          {"fault": "leak", "severity": 0.8, "duration_seconds": 300}
    DELETE /sensors/{id}/faults          end the machine's faults
    POST   /sensors/{id}/maintenance     {"duration_seconds": 600} (body optional)

Pure request and response logic on the loop's copied views; ``monitor`` owns the
HTTP exchange and the admission rules (token, media type, ``monitoring.control``),
the same for these as for ``/anomalies``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from .._schema import as_data
from ..node.clock import format_instant
from ..node.layout import CLASSIC, table_of
from ..node.loop import SensorView

MAX_CONTROL_SECONDS = 7 * 86400.0
# /sensors/{id}, /sensors/{id}/faults, /sensors/{id}/maintenance (the id percent-encoded).
SENSOR_PATH = re.compile(r"^/sensors/(?P<id>[^/]+)(?P<action>/faults|/maintenance)?$")


class ControlError(Exception):
    """A request about a sensor that cannot be served; ``code`` is the HTTP status."""

    def __init__(self, code: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.code = code


def sensor_path(path: str) -> tuple[str, str] | None:
    """``(sensor id, action)`` of a per-sensor path (action ``""``, ``"faults"`` or
    ``"maintenance"``), or None for any other path."""
    match = SENSOR_PATH.match(path)
    if match is None:
        return None
    return unquote(match["id"]), (match["action"] or "").lstrip("/")


def find(views: list[SensorView], sensor_id: str) -> SensorView:
    """The view of ``sensor_id``; 404 naming a few ids that exist otherwise."""
    for view in views:
        if view.identity.id == sensor_id:
            return view
    known = ", ".join(view.identity.id for view in views[:10])
    raise ControlError(
        HTTPStatus.NOT_FOUND, f"no sensor {sensor_id!r} in this node (have: {known})"
    )


def require_machine(view: SensorView) -> None:
    """Refuse (400) control of a sensor that is not an equipment model."""
    if view.identity.type == CLASSIC.type_name:
        raise ControlError(
            HTTPStatus.BAD_REQUEST,
            f"sensor {view.identity.id!r} is a {CLASSIC.type_name} sensor, which has anomaly "
            "episodes, not faults: use POST /anomalies",
        )


def summary(view: SensorView) -> dict[str, Any]:
    """One line of ``GET /sensors``."""
    machine = view.machine
    episode = view.episode
    return {
        "id": view.identity.id,
        "type": view.identity.type,
        "table": table_of(view.identity.type),
        "last_reading_at": format_instant(view.last_reading_at) if view.last_reading_at else None,
        "state": machine.state if machine else None,
        "health": machine.health if machine else None,
        "fault": machine.fault if machine else None,
        "anomaly": episode.kind if episode else None,
    }


def detail(view: SensorView, rows_written: int) -> dict[str, Any]:
    """``GET /sensors/{id}``: the identity, counts, and for a machine its state, health,
    active fault and last reading (channels and timestamp)."""
    result: dict[str, Any] = {
        **summary(view),
        "identity": as_data(view.identity, display=True),
        "readings_generated": view.readings_generated,
        "rows_written": rows_written,
    }
    machine = view.machine
    if machine is not None:
        result.update(
            fault_severity=machine.fault_severity,
            fault_started_at=machine.fault_started_at,
            instrument_fault=machine.instrument_fault,
            rul_seconds=machine.rul_seconds,
            maintenance=machine.maintenance,
            faults=list(machine.faults),
            last_reading={"timestamp": machine.timestamp, **machine.channels},
        )
    elif view.episode is not None:
        result["anomaly_episode"] = asdict(view.episode)
    return result


def _seconds(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_CONTROL_SECONDS
    ):
        raise ControlError(
            HTTPStatus.BAD_REQUEST,
            f"{key}: must be a number of seconds above 0 and at most "
            f"{MAX_CONTROL_SECONDS:.0f} (got {value!r})",
        )
    return float(value)


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ControlError(
            HTTPStatus.BAD_REQUEST, f"unknown field {unknown[0]!r}; expected {', '.join(allowed)}"
        )


def fault_request(
    body: Mapping[str, Any], faults: tuple[str, ...]
) -> tuple[str, float, float | None]:
    """``(fault, severity, duration_seconds)`` of ``POST /sensors/{id}/faults``."""
    _only(body, ("fault", "severity", "duration_seconds"))
    fault = body.get("fault")
    if fault not in faults:
        raise ControlError(
            HTTPStatus.BAD_REQUEST, f"fault: must be one of {', '.join(faults)} (got {fault!r})"
        )
    severity = body.get("severity", 1.0)
    if isinstance(severity, bool) or not isinstance(severity, int | float) or not 0 < severity <= 1:
        raise ControlError(
            HTTPStatus.BAD_REQUEST, f"severity: must be above 0 and at most 1 (got {severity!r})"
        )
    return str(fault), float(severity), _seconds(body, "duration_seconds")


def maintenance_request(body: Mapping[str, Any]) -> float | None:
    """``duration_seconds`` of ``POST /sensors/{id}/maintenance`` (None: the model's)."""
    _only(body, ("duration_seconds",))
    return _seconds(body, "duration_seconds")
