"""Turn a ``--sink`` URL into a sink, or one clear line saying what is wrong with it.

URL forms (paths follow the SQLAlchemy convention: three slashes and a
relative path, four slashes and an absolute one):

    sqlite:///central.db[?table=NAME]
    postgresql://user:password@host:5432/dbname[?table=NAME&sslmode=…]
    jsonl:///out/dir[?max_bytes=N&max_seconds=S]
    csv:///out/dir[?max_bytes=N&max_seconds=S]
    http://host:port/path   https://host/path
    mqtt://[user:password@]host[:1883]/topic
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import InputError
from .sinks.base import Sink

FORMS = (
    "sqlite:///PATH",
    "postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
    "jsonl:///DIR",
    "csv:///DIR",
    "http(s)://HOST[:PORT]/PATH",
    "mqtt://HOST[:PORT]/TOPIC",
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Problem(Exception):
    pass


def _local_path(scheme: str, netloc: str, path: str, what: str) -> Path:
    if netloc or not path.startswith("/") or len(path) < 2:
        raise _Problem(
            f"expected {scheme}:///relative/{what} or {scheme}:////absolute/{what} "
            "(three slashes, then the path)"
        )
    return Path(unquote(path[1:]))


def _options(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise _Problem(f"unknown option {key!r} (options: {', '.join(allowed)})")
        found[key] = value
    return found


def _table(options: dict[str, str], default: str) -> str:
    table = options.get("table", default)
    if not _IDENTIFIER.fullmatch(table):
        raise _Problem(f"option table: expected a table name like sensor_readings (got {table!r})")
    return table


def _positive(options: dict[str, str], key: str, default: float) -> float:
    if key not in options:
        return default
    try:
        value = float(options[key])
    except ValueError:
        raise _Problem(f"option {key}: expected a number (got {options[key]!r})") from None
    if not value > 0 or value == float("inf"):
        raise _Problem(f"option {key}: must be a number greater than 0 (got {options[key]})")
    return value


def _needs(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise _Problem(f"needs the {package} package; install sensorfleet[sync]")


def parse_sink_url(url: str, timeout: float = 10.0) -> Sink:
    """Build the sink a URL names; raise ``InputError`` with one line if it is malformed."""
    try:
        return _build(url.strip(), timeout)
    except _Problem as exc:
        raise InputError([f"--sink {redact(url)!r}: {exc}"]) from None
    except ValueError as exc:  # urlsplit: bad port, bad IPv6 literal
        raise InputError([f"--sink {redact(url)!r}: {exc}"]) from None


def _build(url: str, timeout: float) -> Sink:
    if "://" not in url:
        raise _Problem("expected a URL such as " + ", ".join(FORMS))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from .sinks.sqlite import DEFAULT_TABLE, SQLiteSink

        path = _local_path(scheme, parts.netloc, parts.path, "central.db")
        options = _options(parts.query, ("table",))
        return SQLiteSink(path, _table(options, DEFAULT_TABLE))
    if scheme in ("jsonl", "csv"):
        from .sinks.files import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, FilesSink

        directory = _local_path(scheme, parts.netloc, parts.path, "dir")
        options = _options(parts.query, ("max_bytes", "max_seconds"))
        return FilesSink(
            directory,
            scheme,
            max_bytes=int(_positive(options, "max_bytes", DEFAULT_MAX_BYTES)),
            max_seconds=_positive(options, "max_seconds", DEFAULT_MAX_SECONDS),
        )
    if scheme in ("postgresql", "postgres"):
        _needs("psycopg", "psycopg")
        from .sinks.postgres import DEFAULT_TABLE as PG_TABLE
        from .sinks.postgres import PostgresSink

        pairs = parse_qsl(parts.query, keep_blank_values=True)
        table = _table(dict(pairs), PG_TABLE)
        rest = urlencode([(k, v) for k, v in pairs if k != "table"])
        conninfo = urlunsplit((scheme, parts.netloc, parts.path, rest, ""))
        return PostgresSink(conninfo, redact(url), table=table, timeout=timeout)
    if scheme in ("http", "https"):
        from .sinks.http import HTTPSink

        if not parts.hostname:
            raise _Problem(f"expected {scheme}://HOST[:PORT]/PATH (no host given)")
        _ = parts.port  # raises ValueError for a bad port
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return HTTPSink(target, redact(url), timeout, username=username, password=password)
    if scheme == "mqtt":
        _needs("paho.mqtt", "paho-mqtt")
        from .sinks.mqtt import MQTTSink

        if not parts.hostname:
            raise _Problem("expected mqtt://HOST[:PORT]/TOPIC (no host given)")
        topic = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not topic:
            raise _Problem("expected mqtt://HOST[:PORT]/TOPIC (no topic given)")
        if "#" in url or "+" in topic:
            raise _Problem(f"topic {topic!r}: wildcards # and + cannot be published to")
        if parts.query:
            raise _Problem("mqtt URLs take no options")
        return MQTTSink(
            parts.hostname,
            parts.port or 1883,
            topic,
            redact(url),
            timeout,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )
    raise _Problem(f"unknown sink type {parts.scheme!r}; expected one of " + ", ".join(FORMS))
