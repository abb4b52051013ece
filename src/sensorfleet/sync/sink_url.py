"""Turn a ``--sink`` URL into a sink, or one clear line saying what is wrong with it.

URL forms (paths follow the SQLAlchemy convention: three slashes and a
relative path, four slashes and an absolute one):

    sqlite:///central.db[?table=NAME]
    postgresql://user:password@host:5432/dbname[?table=NAME&partition=daily&retention=30d&sslmode=…]
    jsonl:///out/dir[?max_bytes=N&max_seconds=S]
    csv:///out/dir[?max_bytes=N&max_seconds=S]
    http://host:port/path   https://host/path
    mqtt://[user:password@]host[:1883]/topic      (topic may hold {sensor_id}… placeholders)
    kafka://host:9092[,host:9092…]/topic[?librdkafka.setting=value…]
    -                                             (JSON lines on standard output)
"""

from __future__ import annotations

import importlib.util
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .._redaction import redact, scrub, secrets_of
from ..errors import InputError
from ..node.clock import parse_duration
from .sinks.base import Sink
from .sinks.postgres_partitions import Partitioning
from .topics import TemplateError, TopicTemplate

FORMS = (
    "sqlite:///PATH",
    "postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
    "jsonl:///DIR",
    "csv:///DIR",
    "http(s)://HOST[:PORT]/PATH",
    "mqtt://HOST[:PORT]/TOPIC",
    "kafka://HOST:PORT[,HOST:PORT]/TOPIC",
    "- (standard output)",
)
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Where the throwaway producer that checks Kafka settings logs: nowhere.
_SILENT = logging.getLogger("sensorfleet.sync.librdkafka.check")
_SILENT.disabled = True


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
    except (_Problem, ValueError) as exc:  # ValueError from urlsplit: bad port, bad IPv6
        problem = scrub(str(exc), secrets_of(url))  # a library's message may quote a value
        raise InputError([f"--sink {redact(url)!r}: {problem}"]) from None


def _build(url: str, timeout: float) -> Sink:
    if url == "-":
        from .sinks.stdout import StdoutSink

        return StdoutSink()
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

        _ = parts.port  # raises ValueError for a bad port
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        table = _table(dict(pairs), PG_TABLE)
        own = ("table", "partition", "retention")
        rest = urlencode([(k, v) for k, v in pairs if k not in own])
        conninfo = urlunsplit((scheme, parts.netloc, parts.path, rest, ""))
        return PostgresSink(
            conninfo,
            redact(url),
            table=table,
            timeout=timeout,
            secrets=secrets_of(url),
            partitioning=_partitioning(dict(pairs)),
        )
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
        return HTTPSink(
            target,
            redact(url),
            timeout,
            username=username,
            password=password,
            secrets=secrets_of(url),
        )
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
            _template(topic),
            redact(url),
            timeout,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )
    if scheme == "kafka":
        return _kafka(url, parts.netloc, parts.path, parts.query, timeout)
    raise _Problem(f"unknown sink type {parts.scheme!r}; expected one of " + ", ".join(FORMS))


def _partitioning(options: dict[str, str]) -> Partitioning:
    """``partition=daily`` and ``retention=DURATION`` of a PostgreSQL URL."""
    partition = options.get("partition")
    if partition not in (None, "daily"):
        raise _Problem(f"option partition: expected daily (got {partition!r})")
    retention = None
    if "retention" in options:
        if partition is None:
            raise _Problem("option retention: drops whole daily partitions; add partition=daily")
        try:
            seconds = parse_duration(options["retention"], "option retention")
        except InputError as exc:
            raise _Problem(exc.problems[0]) from None
        if seconds < 86400:
            raise _Problem(
                "option retention: at least 1d, a partition holds a day "
                f"(got {options['retention']!r})"
            )
        retention = timedelta(seconds=seconds)
    return Partitioning(daily=partition == "daily", retention=retention)


def _template(topic: str) -> TopicTemplate:
    try:
        return TopicTemplate(topic)
    except TemplateError as exc:
        raise _Problem(str(exc)) from None


def _kafka(url: str, netloc: str, path: str, query: str, timeout: float) -> Sink:
    _needs("confluent_kafka", "confluent-kafka")
    from confluent_kafka import KafkaException, Producer

    from .sinks.kafka import (
        BOOLEAN_SETTINGS,
        DEFAULTS,
        MAX_TOPIC_LENGTH,
        REQUIRED,
        SETTING_ALIASES,
        VALUE_ALIASES,
        KafkaSink,
        one_line,
        topic_problem,
    )

    form = "kafka://HOST:PORT[,HOST:PORT…]/TOPIC"
    if "@" in netloc:
        raise _Problem("credentials go in query parameters (?sasl.username=…&sasl.password=…)")
    brokers = [b for b in netloc.split(",") if b]
    if not brokers:
        raise _Problem(f"expected {form} (no broker given)")
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _Problem(f"broker {broker!r}: expected HOST:PORT with a port from 1 to 65535")
    topic = unquote(path[1:]) if path.startswith("/") else ""
    if not topic:
        raise _Problem(f"expected {form} (no topic given)")
    template = _template(topic)
    if not _KAFKA_TOPIC.fullmatch(template.literal()):
        raise _Problem(
            f"topic {topic!r}: Kafka topics use only letters, digits, '.', '_' and '-' "
            f"(at most {MAX_TOPIC_LENGTH} characters)"
        )
    # The shortest a template can render: each placeholder gives at least one character.
    shortest = len(template.literal()) + len(template.fields)
    if template.templated and shortest > MAX_TOPIC_LENGTH:
        raise _Problem(
            f"topic {topic!r}: renders to at least {shortest} characters; Kafka topics "
            f"have at most {MAX_TOPIC_LENGTH}"
        )
    problem = None if template.templated else topic_problem(topic)
    if problem is not None:
        raise _Problem(problem)
    config: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        key = SETTING_ALIASES.get(key, key)
        config[key] = VALUE_ALIASES.get((key, value.lower()), value)
    for key, value in REQUIRED.items():
        if key in config and config[key].lower() != value:
            raise _Problem(f"option {key}: sync needs {key}={value} (got {config[key]!r})")
    for key in BOOLEAN_SETTINGS.intersection(config):  # the Python client wants a bool
        if config[key].lower() not in ("true", "false"):
            raise _Problem(f"option {key}: expected true or false (got {config[key]!r})")
        config[key] = config[key].lower() == "true"
    # Silent: a `debug` setting would otherwise print every setting to stderr, unredacted.
    check = {**DEFAULTS, **config, **REQUIRED, "log_level": 0, "logger": _SILENT}
    try:  # librdkafka checks every setting here; with no broker named it connects nowhere
        Producer(check)
    except (KafkaException, TypeError, ValueError) as exc:
        raise _Problem(one_line(exc, secrets_of(url))) from None
    config["bootstrap.servers"] = ",".join(brokers)
    return KafkaSink(config, template, redact(url), timeout, secrets_of(url))
