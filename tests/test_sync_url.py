"""Sink URLs: every supported form builds its sink; every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorfleet.errors import InputError
from sensorfleet.sync.sink_url import parse_sink_url, redact
from sensorfleet.sync.sinks.files import FilesSink
from sensorfleet.sync.sinks.http import HTTPSink
from sensorfleet.sync.sinks.mqtt import MQTTSink
from sensorfleet.sync.sinks.postgres import PostgresSink
from sensorfleet.sync.sinks.sqlite import SQLiteSink


def problem(url: str) -> str:
    with pytest.raises(InputError) as caught:
        parse_sink_url(url)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_sqlite_urls_take_relative_and_absolute_paths() -> None:
    """Three slashes give a relative path, four an absolute one; ?table= names the table."""
    relative = parse_sink_url("sqlite:///data/central.db")
    absolute = parse_sink_url("sqlite:////srv/central.db?table=readings")
    assert isinstance(relative, SQLiteSink) and relative.path == Path("data/central.db")
    assert isinstance(absolute, SQLiteSink) and absolute.path == Path("/srv/central.db")
    assert absolute.table == "readings"


def test_file_sinks_take_rotation_options() -> None:
    """jsonl and csv URLs name a folder and may set max_bytes and max_seconds."""
    sink = parse_sink_url("csv:///out?max_bytes=1000&max_seconds=60")
    assert isinstance(sink, FilesSink)
    assert (sink.fmt, sink.directory, sink.max_bytes, sink.max_seconds) == (
        "csv",
        Path("out"),
        1000,
        60.0,
    )
    assert isinstance(parse_sink_url("jsonl:///out"), FilesSink)


def test_network_sinks_are_built_from_their_urls() -> None:
    """postgresql, http(s) and mqtt URLs build their sinks with host, port, topic and options."""
    pg = parse_sink_url("postgresql://u:secret@db:5433/fleet?table=central&sslmode=disable")
    assert isinstance(pg, PostgresSink)
    assert pg.table == "central" and "sslmode=disable" in pg.conninfo
    assert "table=" not in pg.conninfo and "secret" not in pg.name
    http = parse_sink_url("https://user:pw@example.test/ingest?token=1")
    assert isinstance(http, HTTPSink) and http.url == "https://example.test/ingest?token=1"
    mqtt = parse_sink_url("mqtt://broker/plant/readings")
    assert isinstance(mqtt, MQTTSink)
    assert (mqtt.host, mqtt.port, mqtt.topic) == ("broker", 1883, "plant/readings")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("central.db", "expected a URL such as sqlite:///PATH"),
        ("ftp://host/x", "unknown sink type 'ftp'"),
        ("sqlite://central.db", "three slashes"),
        ("sqlite:///", "three slashes"),
        ("sqlite:///c.db?tabel=x", "unknown option 'tabel' (options: table)"),
        ("sqlite:///c.db?table=drop table", "expected a table name"),
        ("jsonl:///out?max_bytes=-1", "option max_bytes: must be a number greater than 0"),
        ("csv:///out?max_seconds=soon", "option max_seconds: expected a number"),
        ("http:///ingest", "no host given"),
        ("http://host:99999/x", "Port out of range"),
        ("mqtt://broker", "no topic given"),
        ("mqtt://broker/plant/#", "wildcards"),
        ("postgresql://db/x?table=1bad", "expected a table name"),
    ],
)
def test_bad_urls_say_what_is_expected(url: str, words: str) -> None:
    """A malformed URL is reported in one line naming --sink, the URL and the fix."""
    line = problem(url)
    assert line.startswith("--sink ")
    assert words in line


def test_passwords_never_appear_in_messages() -> None:
    """Errors and sink names show *** instead of the password."""
    assert "hunter2" not in problem("mqtt://u:hunter2@broker")
    assert redact("postgresql://u:hunter2@db:5432/x") == "postgresql://u:***@db:5432/x"
