"""The node's HTTP endpoint: health, Prometheus metrics, status, and anomaly control.

    GET    /healthz     200 when the loop runs and writes succeed, else 503 + reasons
    GET    /metrics     Prometheus text exposition
    GET    /status      JSON: identities, config hash, uptime, counts, current episodes
    POST   /anomalies   {"type": "spike", "duration_seconds": 30[, "sensor_id": "…"]}
    DELETE /anomalies   end the current episode (all sensors, or ?sensor_id=…)
    GET    /sensors, /sensors/{id}; POST/DELETE /sensors/{id}/faults;
    POST   /sensors/{id}/maintenance   (see ``sensors``: equipment state and control)

The server runs on its own threads and never opens or shares a SQLite
connection: it reads the loop's counters (``NodeLoop.summary``) and sends
control actions through ``NodeLoop.submit``, so they run between two readings.
It sleeps until a client connects (no polling), and the Prometheus client is
loaded on the first scrape, so a node nobody scrapes never carries it.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import math
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import structlog

from .._deferred import deferring
from .._schema import as_data
from ..node.clock import format_instant
from ..node.loop import NodeLoop, SensorView
from ..node.profiles import ANOMALY_TYPES
from . import sensors as resources
from .connections import ConnectionSlots
from .sensors import ControlError
from .watcher import ReloadStats

with deferring("ssl"):  # http.client's, for HTTPS connections the monitor never makes
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = structlog.get_logger("sensorfleet.monitor")

STALL_SECONDS = 30.0  # no loop pass for this long = stalled
MIN_OVERDUE_SECONDS = 30.0  # buffered rows and no commit for this long = writes overdue
CONTROL_WAIT_SECONDS = 2.0  # how long a control request waits to see its command run
MAX_BODY_BYTES = 64 * 1024
MAX_FORCED_SECONDS = 7 * 86400.0
MAX_STATUS_SENSORS = 1000
# The standard library's default of 5 makes a burst of connections (an orchestrator's
# probes, a scrape storm) wait for SYN retransmits of 1 s, 3 s…; the kernel caps this
# at net.core.somaxconn.
LISTEN_BACKLOG = 1024


class BadRequest(Exception):
    """A control request the node cannot act on; the message is sent back as JSON."""


class Refused(Exception):
    """A control request turned away before it is read: wrong media type, no right to it."""

    def __init__(self, code: HTTPStatus, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.headers = dict(headers or {})


class Monitor:
    """Serves the endpoints for one node loop on a background thread."""

    def __init__(
        self,
        loop: NodeLoop,
        reloads: ReloadStats | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        self.loop = loop
        self.backlog = backlog
        self.reloads = reloads
        self.host = host
        self.port = port
        self.registry: CollectorRegistry | None = None  # built on the first scrape
        self._registry_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake_fds: tuple[int, int] | None = None
        self.connections = ConnectionSlots()

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> int:
        """Bind and serve; return the bound port. Raises ``OSError`` if the port is taken."""
        base = _IPv6Server if ":" in self.host else _Server
        server_class = type(
            base.__name__,
            (base,),
            {"request_queue_size": self.backlog, "slots": self.connections},
        )
        server = server_class((self.host, self.port), _make_handler(self))
        self._server = server
        self.port = int(server.server_address[1])
        self._wake_fds = os.pipe()
        self._thread = threading.Thread(
            target=self._serve,
            args=(server, self._wake_fds[0]),
            name="sensorfleet-monitor",
            daemon=True,
        )
        self._thread.start()
        return self.port

    def _serve(self, server: ThreadingHTTPServer, wake: int) -> None:
        """Accept connections until ``stop`` writes to the wake pipe.

        ``serve_forever`` would wake every poll interval to look for a stop
        request; blocking on the listening socket and a pipe together keeps an
        idle node asleep and still stops at once.
        """
        server.timeout = 0  # handle_request() below must never block
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if wake in ready:
                    return
                # A connection is waiting: accept it once a slot is free (read each time,
                # so a reload of monitoring.max_connections applies to the next one).
                if not self.connections.make_room(self.loop.config.monitoring.max_connections):
                    return
                server.handle_request()

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        fds, self._wake_fds = self._wake_fds, None
        self.connections.stop()
        if fds is not None:
            os.write(fds[1], b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        if server is not None:
            server.server_close()
        if fds is not None:
            for fd in fds:
                os.close(fd)

    # ---- reads ----------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """200 and ``{"status": "ok"}``, or 503 with every reason the node is unhealthy."""
        loop = self.loop
        now = loop.clock.now()
        summary = loop.summary()
        reasons: list[str] = []
        if loop.stopping:
            reasons.append("node is stopping")
        idle = now - loop.last_loop_at
        if idle > STALL_SECONDS:
            reasons.append(f"loop stalled: no pass for {idle:.0f} s")
        overdue_after = max(MIN_OVERDUE_SECONDS, 3 * loop.config.database.flush_interval_seconds)
        for writer in summary.writers:
            if writer.consecutive_failures:
                reasons.append(
                    f"last write failed ({writer.consecutive_failures} in a row): "
                    f"{writer.last_error} [{writer.path}]"
                )
                continue
            last = writer.last_success if writer.last_success is not None else loop.started_at
            if writer.buffered_rows and now - last > overdue_after:
                reasons.append(f"no write for {now - last:.0f} s [{writer.path}]")
        successes = [w.last_success for w in summary.writers if w.last_success is not None]
        body: dict[str, Any] = {
            "status": "unhealthy" if reasons else "ok",
            "uptime_seconds": round(now - loop.started_at, 3),
            "last_write_age_seconds": round(now - min(successes), 3) if successes else None,
            "buffered_rows": summary.rows_unwritten,
        }
        if reasons:
            body["reason"] = reasons[0]
            body["reasons"] = reasons
            return HTTPStatus.SERVICE_UNAVAILABLE, body
        return HTTPStatus.OK, body

    def status(self) -> dict[str, Any]:
        """Identity, effective config hash, uptime, counts and current anomaly episodes."""
        loop = self.loop
        now = loop.clock.now()
        summary = loop.summary()
        views = loop.sensor_views(MAX_STATUS_SENSORS)
        sensors = [_sensor_status(view, summary.rows_by_sensor) for view in views]
        code, health = self.health()
        count = loop.sensor_count
        result: dict[str, Any] = {
            "identity": sensors[0]["identity"] if count == 1 else None,
            "sensors": sensors,
            "sensor_count": count,
            "config_hash": loop.config.digest(),
            "started_at": format_instant(loop.started_at),
            "uptime_seconds": round(now - loop.started_at, 3),
            "readings_per_second": loop.config.simulation.readings_per_second,
            "counts": {
                "readings_generated": summary.readings_generated,
                "rows_written": summary.rows_written,
                "rows_buffered": summary.rows_unwritten,
                "rows_dropped": summary.rows_dropped,
                "anomalies_written": summary.anomalies,
                "write_errors": summary.errors,
            },
            "writers": [asdict(w) for w in summary.writers],
            "health": {"code": int(code), **health},
        }
        if self.reloads is not None:
            result["reloads"] = asdict(self.reloads)
        return result

    def metrics(self) -> bytes:
        """The Prometheus text exposition (the client library loads on the first call)."""
        from prometheus_client import generate_latest

        with self._registry_lock:
            if self.registry is None:
                from .metrics import build_registry

                self.registry = build_registry(self.loop, self.reloads)
        return generate_latest(self.registry)

    # ---- control --------------------------------------------------------------------
    def admit(self, authorization: str | None, content_type: str | None) -> None:
        """Raise ``Refused`` unless a control request may go on (read at request time,
        so a reload of ``monitoring.token`` or ``monitoring.control`` applies at once).

        A cross-site form can post ``text/plain`` but not ``application/json``
        without a CORS preflight (which this server never grants), so the media
        type check alone stops web pages; the token stops everyone else.
        """
        settings = self.loop.config.monitoring
        if settings.token is not None:
            scheme, _, given = (authorization or "").partition(" ")
            expected = settings.token.get_secret_value().encode()
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected
            ):
                raise Refused(
                    HTTPStatus.UNAUTHORIZED,
                    "control (anomalies, faults, maintenance) needs "
                    "'Authorization: Bearer <monitoring.token>'",
                    {"WWW-Authenticate": 'Bearer realm="sensorfleet"'},
                )
        if not settings.control:
            raise Refused(
                HTTPStatus.FORBIDDEN,
                "control (anomalies, faults, maintenance) is off (monitoring.control)",
            )
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be application/json (got {content_type or 'none'!r})",
            )

    def force_anomaly(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Start an episode now on one sensor or all; 200 once applied, 202 if still queued."""
        unknown = sorted(set(body) - {"type", "duration_seconds", "sensor_id"})
        if unknown:
            raise BadRequest(
                f"unknown field {unknown[0]!r}; expected type, duration_seconds, sensor_id"
            )
        kind = body.get("type")
        if kind not in ANOMALY_TYPES:
            raise BadRequest(f"type: must be one of {', '.join(ANOMALY_TYPES)} (got {kind!r})")
        duration = body.get("duration_seconds")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not math.isfinite(duration)
            or not 0 < duration <= MAX_FORCED_SECONDS
        ):
            raise BadRequest(
                f"duration_seconds: must be a number of seconds above 0 and at most "
                f"{MAX_FORCED_SECONDS:.0f} (got {duration!r})"
            )
        sensor_id = self._target(body.get("sensor_id"))
        forced: list[dict[str, Any]] = []

        def command(loop: NodeLoop) -> None:
            lengths = loop.force_anomaly(str(kind), duration, sensor_id)
            forced.extend({"sensor_id": sid, "readings": n} for sid, n in lengths)
            log.info(
                "anomaly forced",
                anomaly_type=kind,
                duration_seconds=duration,
                sensors=len(lengths),
            )

        if not self._run(command):
            return HTTPStatus.ACCEPTED, {"status": "queued", "type": kind}
        return HTTPStatus.OK, {"status": "forced", "type": kind, "sensors": forced}

    def end_anomaly(self, sensor_id: str | None) -> tuple[int, dict[str, Any]]:
        """End current (and pending forced) episodes on one sensor or all."""
        target = self._target(sensor_id)
        ended: list[dict[str, Any]] = []

        def command(loop: NodeLoop) -> None:
            ended.extend({"sensor_id": sid, "type": kind} for sid, kind in loop.end_anomaly(target))
            log.info("anomaly ended", sensors=len(ended))

        if not self._run(command):
            return HTTPStatus.ACCEPTED, {"status": "queued"}
        return HTTPStatus.OK, {"status": "ended", "sensors": ended}

    # ---- sensors and machine control ------------------------------------------------
    def sensors(self) -> dict[str, Any]:
        """``GET /sensors``: every sensor (the first ``MAX_STATUS_SENSORS``) in one line each."""
        loop = self.loop
        views = loop.sensor_views(MAX_STATUS_SENSORS)
        return {
            "sensor_count": loop.sensor_count,
            "sensors": [resources.summary(view) for view in views],
        }

    def sensor(self, sensor_id: str) -> dict[str, Any]:
        """``GET /sensors/{id}``."""
        view = resources.find(self.loop.sensor_views(), sensor_id)
        rows = self.loop.summary().rows_by_sensor.get(sensor_id, 0)
        return resources.detail(view, rows)

    def force_fault(self, sensor_id: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Start a machine fault at the sensor's next reading."""
        view = resources.find(self.loop.sensor_views(), sensor_id)
        resources.require_machine(view)
        # The settings in force (a reference swapped whole by a reload): the model's faults.
        faults = self.loop.machine_of(sensor_id).settings.model.faults
        fault, severity, duration = resources.fault_request(body, faults)

        def command(loop: NodeLoop) -> None:
            loop.machine_of(sensor_id).force_fault(fault, severity, duration)
            log.info(
                "fault forced",
                sensor_id=sensor_id,
                fault=fault,
                severity=severity,
                duration_seconds=duration,
            )

        answer = {"sensor_id": sensor_id, "fault": fault, "severity": severity}
        if not self._run(command):
            return HTTPStatus.ACCEPTED, {"status": "queued", **answer}
        return HTTPStatus.OK, {"status": "forced", **answer, "duration_seconds": duration}

    def end_fault(self, sensor_id: str) -> tuple[int, dict[str, Any]]:
        """End the machine's faults from its next reading on."""
        resources.require_machine(resources.find(self.loop.sensor_views(), sensor_id))
        ended: list[str] = []

        def command(loop: NodeLoop) -> None:
            ended.extend(loop.machine_of(sensor_id).end_fault())
            log.info("fault ended", sensor_id=sensor_id, faults=ended)

        if not self._run(command):
            return HTTPStatus.ACCEPTED, {"status": "queued", "sensor_id": sensor_id}
        return HTTPStatus.OK, {"status": "ended", "sensor_id": sensor_id, "faults": ended}

    def start_maintenance(
        self, sensor_id: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Service the machine from its next reading on."""
        resources.require_machine(resources.find(self.loop.sensor_views(), sensor_id))
        duration = resources.maintenance_request(body)

        def command(loop: NodeLoop) -> None:
            loop.machine_of(sensor_id).start_maintenance(duration)
            log.info("maintenance started", sensor_id=sensor_id, duration_seconds=duration)

        answer = {"sensor_id": sensor_id, "duration_seconds": duration}
        if not self._run(command):
            return HTTPStatus.ACCEPTED, {"status": "queued", **answer}
        return HTTPStatus.OK, {"status": "maintenance", **answer}

    def _target(self, sensor_id: Any) -> str | None:
        """The sensor a control request names (None: all), checked before it is queued."""
        if sensor_id is None:
            return None
        if not isinstance(sensor_id, str):
            raise BadRequest(f"sensor_id: expected text (got {sensor_id!r})")
        known = self.loop.sensor_ids()
        if sensor_id not in known:
            raise BadRequest(
                f"sensor_id: no sensor {sensor_id!r} in this node (have: {', '.join(known[:10])})"
            )
        return sensor_id

    def _run(self, command: Any) -> bool:
        """Submit ``command`` to the loop; True once it ran (within a short wait)."""
        done = threading.Event()

        def wrapped(loop: NodeLoop) -> None:
            try:
                command(loop)
            finally:
                done.set()

        self.loop.submit(wrapped)
        return done.wait(CONTROL_WAIT_SECONDS)


def _sensor_status(view: SensorView, rows_by_sensor: Mapping[str, int]) -> dict[str, Any]:
    episode = view.episode
    current: dict[str, Any] | None = None
    if episode is not None and episode.pending:
        current = {"type": episode.kind, "forced": True, "pending": True}
    elif episode is not None:
        current = {
            "type": episode.kind,
            "forced": episode.forced,
            "length_readings": episode.length_readings,
            "remaining_readings": episode.remaining_readings,
            "started_at": format_instant(episode.started_at) if episode.started_at else None,
        }
    return {
        "identity": as_data(view.identity, display=True),
        "source": view.source,
        "readings_generated": view.readings_generated,
        "rows_written": rows_by_sensor.get(view.identity.id, 0),
        "last_reading_at": format_instant(view.last_reading_at) if view.last_reading_at else None,
        "anomaly_episode": current,
        # An equipment sensor's latest state (None for a classic sensor): /sensors/{id} has more.
        "machine": resources.summary(view) if view.machine is not None else None,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    slots: ConnectionSlots

    def process_request(self, request: Any, client_address: Any) -> None:
        self.slots.opened(request)  # before its thread runs: the thread frees it
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.closed(request)
            raise


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """One HTTP exchange; ``ROUTES`` says which method of it serves a path."""

    server_version = "sensorfleet"
    protocol_version = "HTTP/1.1"
    monitor: ClassVar[Monitor]

    # ---- the connection's slot (see edges/connections.py) ------------------------------
    def setup(self) -> None:
        super().setup()
        # The socket timeout closes a connection idle this long (and bounds each read).
        self.connection.settimeout(self.monitor.loop.config.monitoring.idle_timeout_seconds)

    def handle_one_request(self) -> None:
        self.monitor.connections.idle(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if not self.monitor.connections.busy(self.connection):
            self.close_connection = True  # closed to make room as the request arrived
            return False
        return True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.monitor.connections.closed(self.connection)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")  # same status and headers; ``_send`` leaves the body out

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute

        def __getattr__(self, name: str) -> Any:
            # The standard library looks up do_<METHOD> and answers 501 with an HTML page
            # when it is missing; every method (POST, OPTIONS, TRACE, an invented one) goes
            # through the routing table instead: served, 405 with the path's Allow, or 404.
            if name.startswith("do_") and name != "do_":
                return functools.partial(self._dispatch, name[3:])
            raise AttributeError(name)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        methods = ROUTES.get(path)
        allowed: Iterable[str] | None = methods
        if methods is not None:
            serve = methods.get(method)
            if serve is not None:
                serve(self)
                return
        elif (target := resources.sensor_path(path)) is not None:
            sensor_id, action = target
            allowed = SENSOR_ROUTES[action]
            handler = SENSOR_ROUTES[action].get(method)
            if handler is not None:
                handler(self, sensor_id)
                return
        self._drain()
        if allowed is None:
            self._not_found()
        else:
            self._method_not_allowed(", ".join(allowed))

    # ---- the endpoints --------------------------------------------------------------
    def get_health(self) -> None:
        code, body = self.monitor.health()
        self._json(code, body)

    def get_metrics(self) -> None:
        exposition = self.monitor.metrics()
        from prometheus_client import CONTENT_TYPE_LATEST  # loaded by metrics()

        self._send(HTTPStatus.OK, exposition, CONTENT_TYPE_LATEST)

    def get_status(self) -> None:
        self._json(HTTPStatus.OK, self.monitor.status())

    def post_anomaly(self) -> None:
        if not self._admitted():
            return
        try:
            body = self._body()
            if not isinstance(body, dict):
                raise BadRequest(
                    'body must be a JSON object such as {"type": "spike", "duration_seconds": 10}'
                )
            code, result = self.monitor.force_anomaly(body)
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._json(code, result)

    def delete_anomaly(self) -> None:
        if not self._admitted():
            return
        query = parse_qs(urlsplit(self.path).query)
        try:
            body = self._body(optional=True) or {}
            if not isinstance(body, dict):
                raise BadRequest('body must be empty or a JSON object such as {"sensor_id": "S1"}')
            sensor_id = body.get("sensor_id") or next(iter(query.get("sensor_id", [])), None)
            code, result = self.monitor.end_anomaly(sensor_id)
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._json(code, result)

    def get_sensors(self) -> None:
        self._json(HTTPStatus.OK, self.monitor.sensors())

    def get_sensor(self, sensor_id: str) -> None:
        self._answer(lambda: (HTTPStatus.OK, self.monitor.sensor(sensor_id)))

    def post_fault(self, sensor_id: str) -> None:
        if self._admitted():
            self._answer(lambda: self.monitor.force_fault(sensor_id, self._object()))

    def delete_fault(self, sensor_id: str) -> None:
        if self._admitted():
            self._drain()
            self._answer(lambda: self.monitor.end_fault(sensor_id))

    def post_maintenance(self, sensor_id: str) -> None:
        if self._admitted():
            self._answer(lambda: self.monitor.start_maintenance(sensor_id, self._object(True)))

    # ---- plumbing -------------------------------------------------------------------
    def _answer(self, respond: Callable[[], tuple[int, Mapping[str, Any]]]) -> None:
        """Send what ``respond`` returns, or the error it raises as JSON."""
        try:
            code, body = respond()
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        except ControlError as exc:
            self._json(exc.code, {"error": str(exc)})
            return
        self._json(code, body)

    def _object(self, optional: bool = False) -> Mapping[str, Any]:
        body = self._body(optional)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _admitted(self) -> bool:
        try:
            self.monitor.admit(self.headers.get("Authorization"), self.headers.get("Content-Type"))
        except Refused as exc:
            self._drain()
            self._json(exc.code, {"error": str(exc)}, exc.headers)
            return False
        return True

    def _body(self, optional: bool = False) -> Any:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            if optional:
                return None
            raise BadRequest("missing body: send a JSON object with Content-Length")
        try:
            length = int(length_text)
        except ValueError:
            raise BadRequest("Content-Length must be a whole number") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise BadRequest(f"body too large (at most {MAX_BODY_BYTES} bytes)")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            if optional:
                return None
            raise BadRequest("empty body: send a JSON object")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("body is nested too deeply") from None

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True

    def _json(
        self, code: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        payload = (json.dumps(body, default=str) + "\n").encode()
        self._send(code, payload, "application/json", headers)

    def _send(
        self,
        code: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _not_found(self) -> None:
        self._json(
            HTTPStatus.NOT_FOUND,
            {"error": f"no such endpoint {self.path!r}; try /healthz, /metrics, /status"},
        )

    def _method_not_allowed(self, allowed: str) -> None:
        self._json(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"method not allowed; use {allowed}"},
            {"Allow": allowed},
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http request", client=self.client_address[0], request=format % args)


# Path → method → the handler method serving it. HEAD is served as GET without a body; a
# known path with another method gets 405 and its methods in Allow, an unknown path 404.
ROUTES: dict[str, dict[str, Callable[[_Handler], None]]] = {
    "/healthz": {"GET": _Handler.get_health},
    "/metrics": {"GET": _Handler.get_metrics},
    "/status": {"GET": _Handler.get_status},
    "/anomalies": {"POST": _Handler.post_anomaly, "DELETE": _Handler.delete_anomaly},
    "/sensors": {"GET": _Handler.get_sensors},
}
# Per-sensor paths (/sensors/{id}[/action]): action → method → handler, called with the id.
SENSOR_ROUTES: dict[str, dict[str, Callable[[_Handler, str], None]]] = {
    "": {"GET": _Handler.get_sensor},
    "faults": {"POST": _Handler.post_fault, "DELETE": _Handler.delete_fault},
    "maintenance": {"POST": _Handler.post_maintenance},
}


def _make_handler(monitor: Monitor) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"monitor": monitor})


def start_monitor(
    loop: NodeLoop, reloads: ReloadStats | None, host: str, port: int
) -> Monitor | None:
    """Start the endpoint; on a bind failure log an error and return None (the node runs on)."""
    monitor = Monitor(loop, reloads, host, port)
    started = time.monotonic()
    try:
        bound = monitor.start()
    except OSError as exc:
        log.error(
            "monitoring unavailable",
            host=host,
            port=port,
            error=exc.strerror or str(exc),
            action="running without the HTTP endpoint",
        )
        return None
    log.info(
        "monitoring started",
        host=host,
        port=bound,
        ms=round((time.monotonic() - started) * 1000, 1),
        endpoints="/healthz /metrics /status /anomalies /sensors",
    )
    settings = loop.config.monitoring
    if settings.control and settings.token is None and not _loopback(host):
        log.warning(
            "anomaly control open",
            host=host,
            reason="no monitoring.token, and the port is reachable from other hosts",
            action="set MONITORING_TOKEN, or MONITORING_CONTROL=false, or bind 127.0.0.1",
        )
    return monitor


def _loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (a name other than localhost: no)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
