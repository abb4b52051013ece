"""Live latency: how long a reading takes from its timestamp to a Kafka consumer.

Real nodes (``sensorfleet run``, default settings) write live into one folder while
``sensorfleet sync DIR --sink kafka://…`` follows it with default settings; a
consumer reads the topic and records, for every reading, consumed-at minus the
reading's timestamp. Reported: p50, p95 and max over the measured window
(after a warm-up). Baseline in the same run: the same fleet with sync told to
poll only (``--watch-interval 0``, i.e. a fixed ``--interval`` of 5 s, the way
sync learnt of new rows before it watched each file's WAL).
Target: p95 < 1 s (stretch 250 ms) with defaults.

    python -m bench.latency [--nodes 10] [--rate 100] [--seconds 30] [--smoke]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ._common import parser, save
from ._kafka import Broker, broker
from ._process import percentile, rounded
from .sync import node_env, start_nodes

WARM_UP = 3.0  # seconds of start-up (imports, first flushes) left out of the figures


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def measure(kafka: Broker, nodes: int, rate: float, seconds: float, *sync_args: str) -> Any:
    """One fleet, one collector, one consumer; the latencies of the measured window."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = kafka.create_topic(f"latency-{time.time_ns()}")
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        env = node_env()
        sync = subprocess.Popen(
            [sys.executable, "-m", "sensorfleet", "sync", str(folder), "--sink",
             f"kafka://{kafka.bootstrap}/{topic}", "--log-level", "WARNING", *sync_args],
            env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        fleet = start_nodes(folder, nodes, rate=rate)
        consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": "bench-latency",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "fetch.min.bytes": 1,
            }
        )
        latencies: list[float] = []
        received = 0
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            started = time.time()
            measure_from, stop_at = started + WARM_UP, started + WARM_UP + seconds
            while time.time() < stop_at:
                for message in consumer.consume(10_000, 0.05):
                    if message.error():
                        continue
                    now = time.time()
                    received += 1
                    stamp = _epoch(json.loads(message.value() or b"{}")["timestamp"])
                    if stamp >= measure_from:
                        latencies.append(now - stamp)
        finally:
            consumer.close()
            for proc in [*fleet, sync]:
                proc.terminate()
            for proc in [*fleet, sync]:
                proc.wait(60)
    if not latencies:
        raise SystemExit("no reading reached the consumer")
    return {
        "readings_measured": len(latencies),
        "readings_received": received,
        "p50_ms": rounded(1000 * (percentile(latencies, 0.5) or 0), 1),
        "p95_ms": rounded(1000 * (percentile(latencies, 0.95) or 0), 1),
        "max_ms": rounded(1000 * max(latencies), 1),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--nodes", type=int, default=10)
    args.add_argument("--rate", type=float, default=100.0, help="readings/s per node")
    args.add_argument("--seconds", type=float, default=30.0, help="measured window per mode")
    options = args.parse_args()
    if options.smoke:
        options.nodes, options.rate, options.seconds = 2, 20.0, 4.0
    with broker() as kafka:
        watching = measure(kafka, options.nodes, options.rate, options.seconds)
        polling = measure(
            kafka, options.nodes, options.rate, options.seconds, "--watch-interval", "0"
        )
    result = {
        "p50_ms": watching["p50_ms"],
        "p95_ms": watching["p95_ms"],
        "max_ms": watching["max_ms"],
        "target_p95_ms": 1000,
        "stretch_p95_ms": 250,
        "polling_p50_ms": polling["p50_ms"],
        "polling_p95_ms": polling["p95_ms"],
        "nodes": options.nodes,
        "readings_per_second_per_node": options.rate,
        "seconds": options.seconds,
        "smoke": options.smoke,
        "watching": watching,
        "polling_baseline": polling,
    }
    path = save("latency", result, options.out)
    print(
        f"live latency to Kafka, {options.nodes} nodes × {options.rate:g}/s: p50 "
        f"{watching['p50_ms']} ms, p95 {watching['p95_ms']} ms, max {watching['max_ms']} ms "
        f"(target p95 < 1000 ms)  baseline polling every 5 s: p50 {polling['p50_ms']} ms, p95 "
        f"{polling['p95_ms']} ms  → {path}"
    )


if __name__ == "__main__":
    main()
