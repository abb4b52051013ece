"""Chaos: the collector is SIGKILLed dozens of times while nodes write; nothing lost or doubled
(SQLite), and nothing lost with every repeat carrying its key (Kafka)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import servers
from servers import (
    Kafka,
    make_node_db,
    node_env,
    node_rows,
    sqlite_rows,
    start_node,
    stop_process,
)

from sensorfleet.node.readings import COLUMNS

NODES = 3
KILLS = 60
# Kills that must land after start-up, while the collector ships and marks.
KILLS_WHILE_SHIPPING = 40
KAFKA_KILLS = 30
KAFKA_KILLS_WHILE_SHIPPING = 20

kafka_broker = servers.kafka_broker
kafka_topic = servers.kafka_topic


def collector(data: Path, cwd: Path, *extra: str, sink: str = "sqlite:///central.db") -> list[str]:
    return [
        sys.executable, "-m", "sensorfleet", "sync", str(data),
        "--sink", sink, "--batch-size", "50", "--interval", "0.05s",
        "--log-format", "json", *extra,
    ]  # fmt: skip


def wait_for_event(log: Path, event: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while f'"{event}"' not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {event!r} in {log}"
        time.sleep(0.01)


def kill_repeatedly(
    tmp_path: Path, data: Path, kills: int, shipping: int, sink: str, seed: int
) -> tuple[list[Path], int]:
    """Nodes write while the collector is started and SIGKILLed at least ``kills`` times, and
    until ``shipping`` of the kills hit a shipping collector (a loaded machine makes more of
    the early kills land during start-up); then a final ``--once`` run drains. Returns the
    node files and the kills that hit a shipping collector."""
    rng = random.Random(seed)
    data.mkdir()
    dbs = [make_node_db(data / f"node-{i}.db", seed=i, backfill="5m") for i in range(NODES)]
    nodes = [start_node(db, seed=100 + i, rate=150) for i, db in enumerate(dbs)]
    shipping_kills = 0
    try:
        for kill in range(3 * kills):
            if kill >= kills and shipping_kills >= shipping:
                break
            log = tmp_path / f"collector-{kill}.log"
            with open(log, "w") as handle:
                proc = subprocess.Popen(
                    collector(data, tmp_path, sink=sink),
                    cwd=tmp_path,
                    env=node_env(),
                    stderr=handle,
                )
                if rng.random() < 0.15:
                    time.sleep(rng.uniform(0.0, 0.6))  # now and then, during start-up
                else:
                    # Otherwise at a random moment once it is shipping (start-up time varies
                    # with machine load, so wait for it rather than guess).
                    wait_for_event(log, "sync starting", proc)
                    time.sleep(rng.uniform(0.0, 0.5))
                proc.kill()
                proc.wait(10)
            assert proc.returncode == -9, log.read_text()
            shipping_kills += '"sync starting"' in log.read_text()
            assert all(node.poll() is None for node in nodes), "a node died"
    finally:
        errors = [stop_process(node) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), errors
    final = subprocess.run(
        collector(data, tmp_path, "--once", sink=sink),
        cwd=tmp_path,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    for db in dbs:
        assert sqlite_rows(db, "SELECT count(*) FROM sensor_readings WHERE synced = 0") == [(0,)]
    return dbs, shipping_kills


@pytest.mark.slow
def test_sigkilled_collector_ships_every_row_exactly_once(tmp_path: Path) -> None:
    """After 50+ SIGKILLs at random moments while 3 nodes write, the central table holds every
    node row exactly once with identical values, and every node row is synced = 1."""
    dbs, shipping_kills = kill_repeatedly(
        tmp_path, tmp_path / "data", KILLS, KILLS_WHILE_SHIPPING, "sqlite:///central.db", 20240605
    )
    assert shipping_kills >= KILLS_WHILE_SHIPPING, shipping_kills
    expected = sorted(row for db in dbs for row in node_rows(db))
    central = sqlite_rows(
        tmp_path / "central.db",
        f"SELECT database_id, source_row_id, {', '.join(COLUMNS)} FROM sensor_readings "
        "ORDER BY database_id, source_row_id",
    )
    assert len(central) == len(expected) > NODES * 300
    assert central == expected


@pytest.mark.slow
def test_sigkilled_collector_loses_nothing_in_kafka(
    tmp_path: Path, kafka_broker: Kafka, kafka_topic: str
) -> None:
    """After 20+ SIGKILLs while 3 nodes write into Kafka, a consumer sees every node row, and
    dropping repeats by (database_id, source_row_id) leaves exactly the node rows."""
    sink = kafka_broker.url(kafka_topic)
    dbs, shipping_kills = kill_repeatedly(
        tmp_path, tmp_path / "data", KAFKA_KILLS, KAFKA_KILLS_WHILE_SHIPPING, sink, 7
    )
    assert shipping_kills >= KAFKA_KILLS_WHILE_SHIPPING, shipping_kills
    expected = sorted(row for db in dbs for row in node_rows(db))
    messages = kafka_broker.consume([kafka_topic], len(expected), timeout=60, idle=1.0)
    columns = ("database_id", "source_row_id", *COLUMNS)
    unique = {
        (m["value"]["database_id"], m["value"]["source_row_id"]): tuple(
            m["value"][c] for c in columns
        )
        for m in messages
    }
    assert len(messages) >= len(expected) > NODES * 300
    assert sorted(unique.values()) == expected
