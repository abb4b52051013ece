"""The Kafka sink end to end: `sensorfleet sync` into a real broker (tansu), read back by a
real consumer."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import servers
from servers import Kafka, make_node_db, node_env, node_rows, sqlite_rows

from sensorfleet.node.readings import COLUMNS
from sensorfleet.sync.sinks.base import CENTRAL_COLUMNS

kafka_broker = servers.kafka_broker
kafka_topic = servers.kafka_topic


def sync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", "sync", *args, "--log-format", "json"],
        cwd=cwd, env=node_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("kafka-nodes")
    return [
        make_node_db(folder / f"node-{i}.db", seed=i, backfill="5m", sensor_id=f"KAFKA_{i}")
        for i in range(2)
    ]


@pytest.fixture
def data(templates: list[Path], tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for template in templates:
        (folder / template.name).write_bytes(template.read_bytes())
    return folder


def unsynced(data: Path) -> int:
    return sum(
        sqlite_rows(db, "SELECT count(*) FROM sensor_readings WHERE synced = 0")[0][0]
        for db in sorted(data.glob("*.db"))
    )


def test_every_reading_is_one_message_keyed_by_its_sensor(
    data: Path, tmp_path: Path, kafka_broker: Kafka, kafka_topic: str
) -> None:
    """`sync --sink kafka://…` sends each row once as JSON with every central column, keyed by
    sensor id, one sensor's readings in order in one partition, and marks every row."""
    url = kafka_broker.url(kafka_topic, "compression.type=zstd&linger.ms=1")
    result = sync("data", "--sink", url, "--once", "--batch-size", "128", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = sorted(row for db in sorted(data.glob("*.db")) for row in node_rows(db))
    messages = kafka_broker.consume([kafka_topic], len(expected), idle=0.5)
    values = [m["value"] for m in messages]
    assert list(values[0]) == list(CENTRAL_COLUMNS)
    got = sorted(tuple(v[c] for c in ("database_id", "source_row_id", *COLUMNS)) for v in values)
    assert got == expected
    assert all(m["key"] == m["value"]["sensor_id"] for m in messages)
    partitions: dict[str, set[int]] = defaultdict(set)
    for message in messages:
        partitions[message["key"]].add(message["partition"])
    assert sorted(partitions) == ["KAFKA_0", "KAFKA_1"]
    assert all(len(p) == 1 for p in partitions.values())
    for key in partitions:
        ids = [m["value"]["source_row_id"] for m in sorted(messages, key=lambda m: m["offset"])
               if m["key"] == key]  # fmt: skip
        assert ids == sorted(ids)
    assert unsynced(data) == 0


def test_topic_template_sends_each_sensor_to_its_own_topic(
    data: Path, tmp_path: Path, kafka_broker: Kafka
) -> None:
    """`kafka://…/readings.{sensor_id}` puts every reading on its sensor's topic."""
    prefix = f"r{tmp_path.name[-12:]}"
    topics = [kafka_broker.create_topic(f"{prefix}.KAFKA_{i}") for i in range(2)]
    url = kafka_broker.url(prefix + ".{sensor_id}")
    result = sync("data", "--sink", url, "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    messages = kafka_broker.consume(topics, 600, idle=0.5)
    assert len(messages) == 600
    assert all(m["topic"] == f"{prefix}.{m['value']['sensor_id']}" for m in messages)
    assert unsynced(data) == 0


def test_missing_topic_is_one_line_and_nothing_is_marked(
    data: Path, tmp_path: Path, kafka_broker: Kafka
) -> None:
    """A topic that does not exist is one error line naming it (no auto-creation), exit 1,
    no row marked, and a secret setting never shows."""
    url = kafka_broker.url("no-such-topic", "client.id=fleet&sasl.password=hunter2")
    result = sync("data", "--sink", url, "--once", "--sink-timeout", "5s", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "topic 'no-such-topic' does not exist" in errors[0], result.stderr
    assert "hunter2" not in result.stderr and "sasl.password=***" in errors[0]
    assert unsynced(data) == 600
    listed = subprocess.run(
        [kafka_broker.binary, "topic", "list", "--broker", f"tcp://{kafka_broker.bootstrap}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "no-such-topic" not in listed.stdout
