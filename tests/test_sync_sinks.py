"""One contract for every sink, run against the real destination, plus each sink's own rules."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import servers
from servers import Receiver, Subscriber, free_port, make_node_db, sqlite_rows

from sensorfleet.node.config import Database
from sensorfleet.sync.sink_url import parse_sink_url
from sensorfleet.sync.sinks.base import CENTRAL_COLUMNS, Batch, Sink, SinkError
from sensorfleet.sync.sinks.files import FilesSink
from sensorfleet.sync.source import NodeDatabase
from sensorfleet.sync.topics import safe

# Real servers for this module (fixtures defined in tests/servers.py).
postgres_server = servers.postgres_server
postgres_url = servers.postgres_url
mosquitto_port = servers.mosquitto_port
http_receiver = servers.http_receiver
kafka_broker = servers.kafka_broker

SINKS = ["sqlite", "postgresql", "jsonl", "csv", "http", "mqtt", "mqtt-template", "kafka"]
# Sinks whose reader waits for a number of rows to arrive.
STREAMS = {"mqtt", "mqtt-template", "kafka"}
STORAGE = {"sqlite", "postgresql"}


@pytest.fixture(scope="module")
def node_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_node_db(tmp_path_factory.mktemp("node") / "node.db", seed=3, backfill="5m")


def read_batch(db: Path, limit: int = 40, after: int = 0) -> Batch:
    source = NodeDatabase(db, Database(), read_only=True)
    database_id = source.open()
    rows = source.read_after(after, limit)
    source.close()
    return Batch(database_id, str(db), rows, "2026-01-02T03:04:05.000006Z")


def normal(row: dict[str, Any]) -> tuple[Any, ...]:
    """The comparable part of a central row, whatever types the sink gave back."""

    def number(value: Any) -> float | None:
        return None if value in (None, "") else round(float(value), 6)

    stamp = row["timestamp"]
    if not isinstance(stamp, str):
        stamp = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        row["database_id"],
        int(row["source_row_id"]),
        stamp,
        row["sensor_id"],
        number(row["temperature"]),
        number(row["vibration"]),
        number(row["voltage"]),
        int(row["status_code"]),
        int(row["anomaly_flag"]),
        row["anomaly_type"] or None,
        row["location"],
    )


def expected(batch: Batch) -> list[tuple[Any, ...]]:
    return [normal(record) for record in batch.records()]


@dataclass
class Case:
    kind: str
    url: str
    read: Callable[[], list[dict[str, Any]]]
    unreachable: str


@pytest.fixture(params=SINKS)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    kind: str = request.param
    closed = free_port()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    if kind == "sqlite":
        db = tmp_path / "central.db"

        def read_sqlite() -> list[dict[str, Any]]:
            rows = sqlite_rows(db, f"SELECT {', '.join(CENTRAL_COLUMNS)} FROM sensor_readings")
            return [dict(zip(CENTRAL_COLUMNS, r, strict=True)) for r in rows]

        yield Case(kind, f"sqlite:///{db}", read_sqlite, f"sqlite:///{blocker}/central.db")
    elif kind == "postgresql":
        import psycopg
        from psycopg.rows import dict_row

        url = request.getfixturevalue("postgres_url")

        def read_pg() -> list[dict[str, Any]]:
            with psycopg.connect(url, row_factory=dict_row) as conn:
                conn.execute("SET TIME ZONE 'UTC'")
                return list(conn.execute("SELECT * FROM sensor_readings"))

        yield Case(kind, url, read_pg, f"postgresql://postgres@127.0.0.1:{closed}/x")
    elif kind in ("jsonl", "csv"):
        out = tmp_path / "out"

        def read_files() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for path in sorted(out.glob(f"*.{kind}*")):
                with open(path, encoding="utf-8", newline="") as handle:
                    if kind == "jsonl":
                        rows.extend(json.loads(line) for line in handle)
                    else:
                        rows.extend(csv.DictReader(handle))
            return rows

        yield Case(kind, f"{kind}:///{out}", read_files, f"{kind}:///{blocker}/out")
    elif kind == "http":
        receiver: Receiver = request.getfixturevalue("http_receiver")
        yield Case(kind, receiver.url, receiver.rows, f"http://127.0.0.1:{closed}/ingest")
    elif kind == "kafka":
        broker: servers.Kafka = request.getfixturevalue("kafka_broker")
        topic = broker.create_topic(f"t-{tmp_path.name[-20:]}")

        def read_kafka(count: int) -> list[dict[str, Any]]:
            messages = broker.consume([topic], count, idle=0.3)
            assert all(m["key"] == m["value"]["sensor_id"] for m in messages)
            return [m["value"] for m in messages]

        yield Case(
            kind,
            broker.url(topic),
            read_kafka,  # type: ignore[arg-type]
            f"kafka://127.0.0.1:{closed}/{topic}",
        )
    else:
        port = request.getfixturevalue("mosquitto_port")
        prefix = f"sensorfleet/{tmp_path.name}"
        topic = prefix + ("/{location}/{sensor_id}" if kind == "mqtt-template" else "")
        subscriber = Subscriber(port, f"{prefix}/#" if kind == "mqtt-template" else topic)
        try:
            yield Case(
                kind,
                f"mqtt://127.0.0.1:{port}/{topic}",
                subscriber.wait_rows,  # type: ignore[arg-type]
                f"mqtt://127.0.0.1:{closed}/{topic}",
            )
            if kind == "mqtt-template" and subscriber.messages:  # one per reading, own topic
                expected_topics = [
                    f"{prefix}/{safe(m['location'])}/{safe(m['sensor_id'])}"
                    for m in subscriber.messages
                ]
                assert subscriber.topics == expected_topics and "rows" not in subscriber.messages[0]
        finally:
            subscriber.close()


def open_sink(url: str) -> Sink:
    sink = parse_sink_url(url, timeout=3)
    sink.open()
    return sink


def wait_rows(case: Case, count: int) -> list[dict[str, Any]]:
    if case.kind in STREAMS:
        return case.read(count)  # type: ignore[call-arg]
    return case.read()


def test_acknowledged_batch_is_at_destination(case: Case, node_db: Path) -> None:
    """When write returns, every row of the batch is at the destination with all its columns."""
    batch = read_batch(node_db)
    sink = open_sink(case.url)
    try:
        sink.write(batch)
        got = wait_rows(case, len(batch))
    finally:
        sink.close()
    assert sorted(normal(r) for r in got) == expected(batch)
    assert set(got[0]) >= set(CENTRAL_COLUMNS)


def test_batch_sent_twice_keeps_its_key(case: Case, node_db: Path) -> None:
    """A batch sent again (a crash before marking) is stored once by storage sinks,
    and carries the same (database_id, source_row_id) key everywhere else."""
    batch = read_batch(node_db)
    sink = open_sink(case.url)
    try:
        first = sink.write(batch)
        again = sink.write(batch)
        got = wait_rows(case, 2 * len(batch))
    finally:
        sink.close()
    keys = {(r["database_id"], int(r["source_row_id"])) for r in got}
    assert keys == {(batch.database_id, i) for i in batch.ids}
    if case.kind in STORAGE:
        assert (first, again) == (len(batch), 0)
        assert len(got) == len(batch)
    else:
        assert len(got) == 2 * len(batch)


def test_unreachable_destination_is_a_sink_error(case: Case) -> None:
    """A destination that cannot be reached raises SinkError naming the sink, within the timeout."""
    sink = parse_sink_url(case.unreachable, timeout=2)
    with pytest.raises(SinkError) as caught:
        sink.open()
        sink.write(read_batch_from_nothing())
    assert sink.name.split("://")[0] in str(caught.value)


def read_batch_from_nothing() -> Batch:
    row = (1, "2026-01-01T00:00:00.000000Z", "S", 1.0, 2.0, 3.0, 0, 0, None, "1", "m", "x", "l")
    return Batch("db", "none", [row], "2026-01-01T00:00:00.000000Z")


def test_sqlite_sink_upserts_across_batches(tmp_path: Path, node_db: Path) -> None:
    """Overlapping batches from one database store each row id once, in one central table."""
    sink = open_sink(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert sink.write(read_batch(node_db, 30)) == 30
        assert sink.write(read_batch(node_db, 30, after=20)) == 20
    finally:
        sink.close()
    rows = sqlite_rows(
        tmp_path / "c.db", "SELECT count(*), count(DISTINCT source_row_id) FROM sensor_readings"
    )
    assert rows == [(50, 50)]


def test_postgres_sink_reconnects_after_losing_its_connection(
    postgres_url: str, node_db: Path
) -> None:
    """A dropped server connection fails one batch with SinkError; the next write reconnects."""
    import psycopg

    sink = open_sink(postgres_url)
    try:
        sink.write(read_batch(node_db, 10))
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(SinkError):
            sink.write(read_batch(node_db, 10, after=10))
        assert sink.write(read_batch(node_db, 10, after=10)) == 10
        with psycopg.connect(postgres_url) as conn:
            count = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
            kind = conn.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'sensor_readings' AND column_name = 'timestamp'"
            ).fetchone()
    finally:
        sink.close()
    assert count == (20,)
    assert kind == ("timestamp with time zone",)


def test_files_rotate_by_size_and_publish_on_close(tmp_path: Path, node_db: Path) -> None:
    """Files are renamed from .partial to their final name when full and when the sink closes."""
    batch_bytes = len(json.dumps(read_batch(node_db, 10).records()))
    sink = FilesSink(tmp_path / "out", "jsonl", max_bytes=int(batch_bytes * 1.5))
    sink.open()
    for after in range(0, 50, 10):
        sink.write(read_batch(node_db, 10, after=after))
    finals = sorted((tmp_path / "out").glob("*.jsonl"))
    partials = list((tmp_path / "out").glob("*.partial"))
    sink.close()
    assert len(finals) >= 2 and len(partials) == 1
    assert not list((tmp_path / "out").glob("*.partial"))
    lines = [
        json.loads(line) for p in sorted((tmp_path / "out").glob("*.jsonl")) for line in p.open()
    ]
    assert sorted(r["source_row_id"] for r in lines) == list(range(1, 51))


def test_files_left_by_a_crash_are_cut_to_whole_lines(tmp_path: Path) -> None:
    """A .partial file ending in half a line is cut back to its last whole line and published."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "readings-x.csv.partial").write_text(
        ",".join(CENTRAL_COLUMNS) + "\n" + "a,1" + "\n" + "b,2,half"
    )
    (out / "readings-empty.csv.partial").write_text(",".join(CENTRAL_COLUMNS) + "\n")
    FilesSink(out, "csv").open()
    assert sorted(p.name for p in out.iterdir()) == ["readings-x.csv"]
    assert (out / "readings-x.csv").read_text().endswith("a,1\n")


def test_http_sink_retries_server_errors_with_backoff(
    http_receiver: Receiver, node_db: Path
) -> None:
    """503 answers are retried; the batch counts as sent only once the server answers 2xx."""
    http_receiver.fail_next = 2
    sink = open_sink(http_receiver.url)
    sink.write(read_batch(node_db, 5))
    assert http_receiver.requests == 3
    assert len(http_receiver.rows()) == 5
    key = http_receiver.headers_seen[0]["Idempotency-Key"]
    assert key.endswith(":1-5")


def test_http_sink_refusal_is_not_retried(http_receiver: Receiver, node_db: Path) -> None:
    """A 4xx answer (not 408/429) is a refusal: one request, then SinkError with the status."""
    http_receiver.fail_next, http_receiver.fail_status = 5, 400
    sink = open_sink(http_receiver.url)
    with pytest.raises(SinkError, match="400"):
        sink.write(read_batch(node_db, 5))
    assert http_receiver.requests == 1


def test_http_sink_gives_up_after_its_attempts(http_receiver: Receiver, node_db: Path) -> None:
    """A server that keeps failing makes write raise SinkError after the configured attempts."""
    http_receiver.fail_next = 100
    sink = open_sink(http_receiver.url)
    with pytest.raises(SinkError, match="after 3 attempts"):
        sink.write(read_batch(node_db, 5))
    assert http_receiver.requests == 3 and http_receiver.rows() == []


def test_mqtt_sink_reconnects_to_a_restarted_broker(tmp_path: Path, node_db: Path) -> None:
    """Publishing to a stopped broker raises SinkError; once it is back, writes succeed."""
    import subprocess

    from servers import stop_process, wait_for_port

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        servers.missing("Mosquitto (Debian package mosquitto)")
    port = free_port()
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    os.chmod(tmp_path, 0o755)

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE, text=True)
        wait_for_port(port)
        return proc

    broker = start()
    sink = open_sink(f"mqtt://127.0.0.1:{port}/t")
    try:
        sink.write(read_batch(node_db, 5))
        stop_process(broker)
        with pytest.raises(SinkError):
            sink.write(read_batch(node_db, 5))
        broker = start()
        subscriber = Subscriber(port, "t")
        sink.write(read_batch(node_db, 5, after=5))
        assert len(subscriber.wait_rows(5)) == 5
        subscriber.close()
    finally:
        sink.close()
        stop_process(broker)
