"""Live latency: how long a reading takes from its timestamp to a Kafka consumer.

Real nodes (``sensorfleet run``, default settings) write live into one folder while
``sensorfleet sync DIR --sink kafka://…`` follows it with default settings; a
consumer reads the topic and records, for every reading, consumed-at minus the
reading's timestamp. Reported: p50, p95 and max over the measured window
(after a warm-up). Baseline in the same run: the same fleet with sync told to
poll only (``--watch-interval 0``, i.e. a fixed ``--interval`` of 5 s, the way
sync learnt of new rows before it watched each file's WAL).
Target: p95 < 1 s (stretch 250 ms) with defaults. ``--sink stdout`` measures the
same path through ``--sink -`` and a pipe instead (no broker needed).

    python -m bench.latency [--nodes 10] [--rate 100] [--seconds 30] [--sink stdout] [--smoke]
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ._common import parser, save
from ._kafka import Broker, broker
from ._process import percentile, rounded
from .sync import node_env, start_nodes

WARM_UP = 3.0  # seconds after the first reading arrives that are left out of the figures
START_UP_LIMIT = 180.0  # seconds to wait for the first reading


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class _Kafka:
    """Readings as a Kafka consumer sees them (every partition, from the beginning)."""

    def __init__(self, kafka: Broker, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": "bench-latency",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "fetch.min.bytes": 1,
            }
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def poll(self) -> list[tuple[float, bytes]]:
        messages = self.consumer.consume(10_000, 0.05)
        now = time.time()
        return [(now, m.value() or b"{}") for m in messages if not m.error()]

    def close(self) -> None:
        self.consumer.close()


class _Pipe:
    """Readings as a reader of ``sync --sink -`` sees them (a thread reads the pipe)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        assert proc.stdout is not None
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            with self.lock:
                self.lines.append((time.time(), line))

    def poll(self) -> list[tuple[float, bytes]]:
        time.sleep(0.05)
        with self.lock:
            taken, self.lines = self.lines, []
        return taken

    def close(self) -> None:
        """The thread ends when sync stops and the pipe closes."""


def measure(
    kafka: Broker | None, nodes: int, rate: float, seconds: float, *sync_args: str
) -> dict[str, Any]:
    """One fleet, one collector, one reader; the latencies of the measured window.
    With ``kafka`` None, sync writes JSON lines to a pipe (``--sink -``) instead."""
    topic = kafka.create_topic(f"latency-{time.time_ns()}") if kafka else ""
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        sink = f"kafka://{kafka.bootstrap}/{topic}" if kafka else "-"
        sync = subprocess.Popen(
            [sys.executable, "-m", "sensorfleet", "sync", str(folder), "--sink", sink,
             "--log-level", "WARNING", *sync_args],
            env=node_env(), stdout=subprocess.PIPE if kafka is None else subprocess.DEVNULL,
        )  # fmt: skip
        fleet = start_nodes(folder, nodes, rate=rate)
        reader: _Kafka | _Pipe = _Kafka(kafka, topic) if kafka else _Pipe(sync)
        latencies: list[float] = []
        received = 0
        try:
            # The window starts WARM_UP after the first reading arrives (start-up of the
            # processes varies with the machine's load).
            measure_from, stop_at = float("inf"), time.time() + START_UP_LIMIT
            while time.time() < stop_at:
                for at, value in reader.poll():
                    if not received:
                        measure_from = at + WARM_UP
                        stop_at = measure_from + seconds
                    received += 1
                    stamp = _epoch(json.loads(value)["timestamp"])
                    if stamp >= measure_from:
                        latencies.append(at - stamp)
        finally:
            reader.close()
            for proc in [*fleet, sync]:
                proc.terminate()
            for proc in [*fleet, sync]:
                proc.wait(60)
    if not latencies:
        raise SystemExit("no reading reached the reader")
    return {
        "sink": "kafka" if kafka else "stdout",
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
    args.add_argument(
        "--sink",
        choices=["kafka", "stdout"],
        default="kafka",
        help="measure through Kafka (tansu) or through `--sink -` and a pipe",
    )
    options = args.parse_args()
    if options.smoke:
        options.nodes, options.rate, options.seconds = 2, 20.0, 4.0
    with broker() if options.sink == "kafka" else contextlib.nullcontext() as kafka:
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
        "sink": options.sink,
        "nodes": options.nodes,
        "readings_per_second_per_node": options.rate,
        "seconds": options.seconds,
        "smoke": options.smoke,
        "watching": watching,
        "polling_baseline": polling,
    }
    path = save("latency", result, options.out)
    print(
        f"live latency to {options.sink}, {options.nodes} nodes × {options.rate:g}/s: p50 "
        f"{watching['p50_ms']} ms, p95 {watching['p95_ms']} ms, max {watching['max_ms']} ms "
        f"(target p95 < 1000 ms)  baseline polling every 5 s: p50 {polling['p50_ms']} ms, p95 "
        f"{polling['p95_ms']} ms  → {path}"
    )


if __name__ == "__main__":
    main()
