"""Equipment tables through `sensorfleet sync`: every sink gets each table's rows once, with a
cursor per table; storage sinks create `<type>_readings` from the layout the node recorded;
stream records name their table and type; hidden labels reach no sink."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import ROOT, query, write_config, write_identity
from servers import Receiver, Subscriber, node_env
from test_sync_cli import sync

from sensorfleet.node.layout import LABEL_COLUMNS

postgres_server = servers.postgres_server
postgres_url = servers.postgres_url
mosquitto_port = servers.mosquitto_port
http_receiver = servers.http_receiver
kafka_broker = servers.kafka_broker

SINKS = ["sqlite", "postgresql", "jsonl", "csv", "http", "mqtt", "mqtt-template", "kafka", "-"]
LABELS = {column.name for column in LABEL_COLUMNS}
Reader = Callable[[int], list[dict[str, Any]]]


def make_mixed_db(folder: Path, labels: str = "inline") -> Path:
    """A node file of classic sensor A and compressor C1 with 10 minutes of history."""
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder / "config.yaml", labels={"mode": labels})
    write_identity(folder / "a.json", id="A")
    write_identity(folder / "c.json", id="C1", type="compressor", location="Hall 2")
    db = folder / "node.db"
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "main.py"), "--config", "config.yaml", "--identity"),
            *("a.json", "c.json", "--db", str(db), "--seed", "4", "--backfill", "10m"),
            *("--start", "2026-05-01T08:00:00Z"),
        ],
        cwd=folder,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return db


@pytest.fixture(params=SINKS)
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Reader]]:
    """A sink URL and a reader of every row it received, each row as a mapping that names
    its table (``table`` for the storage sinks' tables and the files' names)."""
    kind: str = request.param
    if kind == "sqlite":
        central = tmp_path / "central.db"

        def read_sqlite(_count: int) -> list[dict[str, Any]]:
            rows = []
            with __import__("sqlite3").connect(central) as conn:
                conn.row_factory = __import__("sqlite3").Row
                for table in ("sensor_readings", "compressor_readings"):
                    for row in conn.execute(f"SELECT * FROM {table}"):
                        rows.append({**dict(row), "table": table})
            return rows

        yield f"sqlite:///{central}", read_sqlite
    elif kind == "postgresql":
        import psycopg
        from psycopg.rows import dict_row

        url = request.getfixturevalue("postgres_url")

        def read_pg(_count: int) -> list[dict[str, Any]]:
            rows = []
            with psycopg.connect(url, row_factory=dict_row) as conn:
                for table in ("sensor_readings", "compressor_readings"):
                    rows += [{**r, "table": table} for r in conn.execute(f"SELECT * FROM {table}")]
            return rows

        yield url, read_pg
    elif kind in ("jsonl", "csv"):
        out = tmp_path / "out"

        def read_files(_count: int) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for path in sorted(out.glob(f"*.{kind}")):
                table = path.name.split("-", 1)[0]
                table = "sensor_readings" if table == "readings" else table
                with open(path, encoding="utf-8", newline="") as handle:
                    found = (
                        [json.loads(line) for line in handle]
                        if kind == "jsonl"
                        else list(csv.DictReader(handle))
                    )
                rows += [{"table": table, **row} for row in found]
            return rows

        yield f"{kind}:///{out}", read_files
    elif kind == "http":
        receiver: Receiver = request.getfixturevalue("http_receiver")
        yield receiver.url, lambda _count: _stamped(receiver.batches)
    elif kind == "kafka":
        broker: servers.Kafka = request.getfixturevalue("kafka_broker")
        topic = broker.create_topic(f"e-{tmp_path.name[-20:]}")
        yield broker.url(topic), lambda count: [m["value"] for m in broker.consume([topic], count)]
    elif kind == "-":
        yield "-", lambda _count: []  # read from the sync's standard output by the test
    else:
        port = request.getfixturevalue("mosquitto_port")
        prefix = f"sensorfleet/{tmp_path.name}"
        template = kind == "mqtt-template"
        topic = prefix + ("/{type}/{sensor_id}" if template else "")
        subscriber = Subscriber(port, f"{prefix}/#" if template else topic)
        try:
            if template:
                yield f"mqtt://127.0.0.1:{port}/{topic}", subscriber.wait_rows
                assert set(subscriber.topics) == {
                    f"{prefix}/temperature_vibration/A",
                    f"{prefix}/compressor/C1",
                }
            else:
                reader = lambda count: _stamped(_batches(subscriber, count))  # noqa: E731
                yield f"mqtt://127.0.0.1:{port}/{topic}", reader
        finally:
            subscriber.close()


def _batches(subscriber: Subscriber, count: int) -> list[dict[str, Any]]:
    subscriber.wait_rows(count)
    return list(subscriber.messages)


def _stamped(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of batch documents, each with its batch's table (a batch holds one table)."""
    return [
        {"table": batch.get("table", "sensor_readings"), **row}
        for batch in batches
        for row in batch["rows"]
    ]


def test_every_sink_gets_each_table_once(destination: tuple[str, Reader], tmp_path: Path) -> None:
    """`sync --once` ships the classic and the compressor table of a mixed node file to
    the sink, every row once with its own table's columns, and marks both tables synced;
    a stream record of a machine names its table and type."""
    url, read = destination
    db = make_mixed_db(tmp_path / "node")
    result = sync(str(db), "--sink", url, "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(query(db, "SELECT 'C1', count(*) FROM compressor_readings"))
    counts["A"] = query(db, "SELECT count(*) FROM sensor_readings")[0][0]
    assert counts == {"C1": 600, "A": 600}
    found = [json.loads(line) for line in result.stdout.splitlines()] if url == "-" else read(1200)
    # A record without a table is a classic reading (stream records of machines name theirs).
    rows = [{"table": row.get("table", "sensor_readings"), **row} for row in found]
    by_table: dict[str, set[int]] = {}
    for row in rows:
        by_table.setdefault(row["table"], set()).add(int(row["source_row_id"]))
    assert {table: len(ids) for table, ids in by_table.items()} == {
        "sensor_readings": 600,
        "compressor_readings": 600,
    }
    assert len(rows) == 1200  # once each
    machine = next(r for r in rows if r["table"] == "compressor_readings")
    assert machine["sensor_id"] == "C1" and machine["state"] in ("loaded", "unloaded")
    assert float(machine["power_kw"]) > 0 and "temperature" not in machine
    if "type" in machine:  # stream records (not the storage tables) name the type
        assert machine["type"] == "compressor"
    assert query(db, "SELECT DISTINCT synced FROM compressor_readings") == [(1,)]
    assert query(db, "SELECT DISTINCT synced FROM sensor_readings") == [(1,)]


def test_hidden_labels_reach_no_sink_and_cursors_are_per_table(tmp_path: Path) -> None:
    """With hidden labels no shipped record carries a label; a read-only collector keeps one
    cursor per table, so a second run ships nothing again."""
    db = make_mixed_db(tmp_path / "node", labels="hidden")
    cursor = tmp_path / "cursor.json"
    first = sync(str(db), "--sink", "-", "--once", "--cursor", str(cursor), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    records = [json.loads(line) for line in first.stdout.splitlines()]
    machines = [r for r in records if r.get("type") == "compressor"]
    assert len(machines) == 600 and len(records) == 1200
    assert not LABELS & set(machines[0])
    assert not any(LABELS & set(record) for record in records)
    marks = json.loads(cursor.read_text())["databases"]
    database_id = query(db, "SELECT database_id FROM sensorfleet_meta")[0][0]
    assert {key: entry["last_id"] for key, entry in marks.items()} == {
        database_id: 600,
        f"{database_id}#compressor_readings": 600,
    }
    again = sync(str(db), "--sink", "-", "--once", "--cursor", str(cursor), cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""
    assert query(db, "SELECT DISTINCT synced FROM compressor_readings") == [(0,)]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_nodes_with_and_without_hidden_labels_share_a_central_table(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One central store takes the compressor rows of a node that hides its labels and of one
    that carries them, whichever comes first: the hidden node's rows have NULL labels."""
    inline = make_mixed_db(tmp_path / "inline")
    hidden = make_mixed_db(tmp_path / "hidden", labels="hidden")
    if kind == "sqlite":
        url, order = f"sqlite:///{tmp_path / 'central.db'}", (hidden, inline)
    else:
        url, order = request.getfixturevalue("postgres_url"), (inline, hidden)
    for db in order:
        result = sync(str(db), "--sink", url, "--once", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    sql = (
        "SELECT database_id, count(*), count(state), count(power_kw) FROM compressor_readings "
        "GROUP BY database_id"
    )
    if kind == "sqlite":
        found = query(tmp_path / "central.db", sql)
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            found = [tuple(row) for row in conn.execute(sql)]
    ids = {db: query(db, "SELECT database_id FROM sensorfleet_meta")[0][0] for db in order}
    assert sorted(found) == sorted([(ids[inline], 600, 600, 600), (ids[hidden], 600, 0, 600)])
