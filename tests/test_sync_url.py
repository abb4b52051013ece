"""Sink URLs: every supported form builds its sink; every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorfleet._redaction import redact
from sensorfleet.errors import InputError
from sensorfleet.sync.sink_url import parse_sink_url
from sensorfleet.sync.sinks.base import Batch, SinkError
from sensorfleet.sync.sinks.files import FilesSink
from sensorfleet.sync.sinks.http import HTTPSink
from sensorfleet.sync.sinks.kafka import KafkaSink
from sensorfleet.sync.sinks.mqtt import MQTTSink
from sensorfleet.sync.sinks.postgres import PostgresSink
from sensorfleet.sync.sinks.sqlite import SQLiteSink
from sensorfleet.sync.sinks.stdout import StdoutSink
from sensorfleet.sync.topics import safe


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
    assert (mqtt.host, mqtt.port, mqtt.topic.text) == ("broker", 1883, "plant/readings")


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
        ("postgresql://u:p@127.0.0.1:99999/db", "Port out of range"),
        ("mqtt://broker/plant/{serial}", "unknown field {serial}"),
        ("mqtt://broker/plant/{sensor_id", "expected '}' before end of string"),
        ("kafka://broker/readings", "expected HOST:PORT"),
        ("kafka://b1:9092,b2:0/readings", "broker 'b2:0'"),
        ("kafka://b1:9092", "no topic given"),
        ("kafka://b1:9092/plant/readings", "Kafka topics use only letters"),
        ("kafka://b1:9092/r?enable.idempotence=false", "sync needs enable.idempotence=true"),
        ("kafka://b1:9092/r?acks=1", "sync needs acks=all"),
        ("kafka://b1:9092/r?no.such.setting=1", "No such configuration property"),
        ("kafka://u:pw@b1:9092/r", "credentials go in query parameters"),
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
    secret = "kafka://b:9092/r?sasl.username=u&sasl.password=hunter2&no.such.setting=1"
    assert "hunter2" not in problem(secret)
    assert (
        redact(secret) == "kafka://b:9092/r?sasl.username=***&sasl.password=***&no.such.setting=***"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h/ingest?api_key=K3y-123&format=json", "http://h/ingest?api_key=***&format=***"),
        ("https://Tok3n-abc@h/x", "https://***@h/x"),
        ("https://user:Pa55word@h/x#sig=abc", "https://user:***@h/x#***"),
        ("postgresql://u:pw@db/x?table=t&sslmode=require&sslpassword=Pa55",
         "postgresql://u:***@db/x?table=t&sslmode=require&sslpassword=***"),
        ("kafka://b:9092/t?sasl.oauthbearer.config=clientSecret%3DS3cr3t&acks=all&linger.ms=5",
         "kafka://b:9092/t?sasl.oauthbearer.config=***&acks=all&linger.ms=5"),
        ("kafka://b:9092/t?ssl.ca.location=/etc/ca.pem&client.id=plant-7",
         "kafka://b:9092/t?ssl.ca.location=***&client.id=plant-7"),
        ("sqlite:///c.db?table=readings", "sqlite:///c.db?table=readings"),
        ("mqtt://plant@broker/t", "mqtt://plant@broker/t"),
    ],
)  # fmt: skip
def test_every_value_not_known_to_be_harmless_is_hidden(url: str, shown: str) -> None:
    """Query values are hidden unless their setting is known to be harmless, whatever the
    key is called; passwords, an HTTP URL's bare user info and fragments are hidden too."""
    assert redact(url) == shown


def test_kafka_topic_names_kafka_refuses_are_usage_errors() -> None:
    """'.' and '..' and a template that cannot render to 249 characters or fewer are refused
    while parsing, before any broker is asked."""
    for topic in (".", ".."):
        assert "does not allow '.' or '..'" in problem(f"kafka://b:9092/{topic}")
    assert "at most 249" in problem("kafka://b:9092/" + "t" * 250)
    line = problem("kafka://b:9092/" + "t" * 249 + ".{sensor_id}")
    assert "renders to at least 251 characters" in line
    sink = parse_sink_url("kafka://b:9092/" + "t" * 240 + ".{sensor_id}")
    assert isinstance(sink, KafkaSink)


def test_a_rendered_topic_too_long_is_refused_before_connecting(tmp_path: Path) -> None:
    """A template filled with a long field value is refused with the topic problem before the
    producer connects (no broker listens at the URL: a connect error would say 'connect')."""
    sink = parse_sink_url("kafka://127.0.0.1:9/readings.{location}", timeout=1.0)
    assert isinstance(sink, KafkaSink)
    row = (1, "2026-01-01T00:00:00Z", "T1", 1.0, 2.0, 3.0, 0, 0, None, "1.4", "M", "X",
           "L" * 245)  # fmt: skip
    with pytest.raises(SinkError) as caught:
        sink.write(Batch("db-1", str(tmp_path / "n.db"), [row], "2026-01-01T00:00:01Z"))
    assert "is 254 characters; Kafka topics have at most 249" in str(caught.value)
    assert "connect" not in str(caught.value) and sink._producer is None


def test_kafka_acks_minus_one_means_all() -> None:
    """acks=-1 is librdkafka's spelling of acks=all, and request.required.acks its alias."""
    for query in ("acks=-1", "acks=ALL", "request.required.acks=-1"):
        sink = parse_sink_url(f"kafka://b:9092/t?{query}")
        assert isinstance(sink, KafkaSink) and sink.config["acks"] == "all", query
        assert "request.required.acks" not in sink.config
    assert "sync needs acks=all" in problem("kafka://b:9092/t?request.required.acks=1")


def test_kafka_urls_pass_librdkafka_settings_through() -> None:
    """Several brokers, a topic and any librdkafka setting; sync's own guarantees stay on."""
    url = "kafka://k1:9092,k2:9093/plant.readings?compression.type=zstd&acks=all&linger.ms=20"
    sink = parse_sink_url(url)
    assert isinstance(sink, KafkaSink)
    assert sink.topic.text == "plant.readings" and not sink.topic.templated
    assert sink.config["bootstrap.servers"] == "k1:9092,k2:9093"
    assert sink.config["compression.type"] == "zstd" and sink.config["linger.ms"] == "20"
    assert (sink.config["enable.idempotence"], sink.config["acks"]) == ("true", "all")


def test_topic_templates_fill_safe_field_values() -> None:
    """{field} placeholders take each reading's value, with anything but A-Z a-z 0-9 . _ -
    turned into _ so a value can never add a topic level or a wildcard."""
    sink = parse_sink_url("mqtt://broker/factory/{location}/{sensor_id}/readings")
    assert isinstance(sink, MQTTSink) and sink.topic.templated
    row = (7, "2026-01-01T00:00:00Z", "TEMP/01+#", 1.0, 2.0, 3.0, 0, 0, None, "1.4", "M", "X",
           "Factory A - Line 3")  # fmt: skip
    assert sink.topic.render(row) == "factory/Factory_A_-_Line_3/TEMP_01__/readings"
    assert (safe(None), safe(""), safe("v1.2-rc_3")) == ("_", "_", "v1.2-rc_3")
    kafka = parse_sink_url("kafka://b:9092/readings.{model}.{firmware_version}")
    assert isinstance(kafka, KafkaSink)
    assert kafka.topic.render(row) == "readings.M.1.4"


def test_a_dash_is_standard_output() -> None:
    """--sink - writes JSON lines to standard output."""
    assert isinstance(parse_sink_url("-"), StdoutSink)
