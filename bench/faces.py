"""OPC UA face under load: N sensors at 1 reading/s served while the node keeps its schedule.

Runs one real node process with N identities twice, side by side: once without
faces (the baseline) and once with the OPC UA server on. During the second run
a real asyncua client subscribes (queue size 0, sampling interval 0, trigger on
timestamps) to the Temperature of a sample of sensors. Reports, for both runs,
rows per sensor against the schedule, the newest row's lag behind the clock
and CPU; for the OPC UA run also how long the address space took to build,
which share of the sampled sensors' rows reached the client, and how late
(client receive time − the reading's SourceTimestamp).

    python -m bench.faces [--sensors 1000] [--seconds 120] [--sample 20] [--smoke]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._common import parser, save
from ._process import Measured, percentile, rounded, run_node, write_config
from .density import check_rows, make_identities

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Subscriber:
    """A real asyncua client on its own thread, recording every Temperature notification."""

    def __init__(self, port: int, sensor_ids: list[str], deadline: float) -> None:
        self.port = port
        self.sensor_ids = sensor_ids
        self.deadline = deadline
        # (sensor id, source timestamp µs, receive time s)
        self.seen: list[tuple[str, int, float]] = []
        self.subscribed_at: float | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(60)

    def datachange_notification(self, node: Any, _value: Any, data: Any) -> None:
        stamp = data.monitored_item.Value.SourceTimestamp
        micros = round((stamp - _EPOCH).total_seconds() * 1e6)
        self.seen.append((str(node.nodeid.Identifier).split(".")[0], micros, time.time()))

    def _run(self) -> None:
        logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # notices, reconnect noise
        try:
            asyncio.run(self._subscribe())
        except Exception as exc:  # the node exiting ends the session; record anything else
            if self.subscribed_at is None:
                self.error = f"{type(exc).__name__}: {exc}"

    async def _subscribe(self) -> None:
        from asyncua import Client, ua

        from sensorfleet.edges.faces.opcua import every_reading

        url = f"opc.tcp://127.0.0.1:{self.port}/"
        while True:  # the server binds only once its address space is built
            try:
                client = Client(url, timeout=30)
                await client.connect()
                break
            except OSError:
                if time.time() > self.deadline:
                    raise
                await asyncio.sleep(0.5)
        try:
            ns = await client.get_namespace_index("urn:sensorfleet")
            subscription = await client.create_subscription(100, self)
            await subscription.create_monitored_items(
                [
                    every_reading(ua.NodeId(f"{sensor}.Temperature", ns), handle)
                    for handle, sensor in enumerate(self.sensor_ids, start=1)
                ]
            )
            self.subscribed_at = time.time()
            while time.time() < self.deadline:
                await asyncio.sleep(0.5)
        finally:
            await client.disconnect()


def _sample_ids(ids_folder: Path, count: int) -> list[str]:
    files = sorted(ids_folder.glob("*.json"))
    step = max(1, len(files) // count)
    return [json.loads(f.read_text())["id"] for f in files[::step][:count]]


def _delivery(db: Path, subscriber: Subscriber, settle_s: float) -> dict[str, Any]:
    """Share of the sampled sensors' rows that reached the client, and how late."""
    if subscriber.subscribed_at is None or not subscriber.seen:
        return {"subscribed": False, "error": subscriber.error or "no notifications"}
    # Compare from one second after subscribing (the first value is the current one).
    start_us = round((subscriber.subscribed_at + 1.0) * 1e6)
    seen = {(s, t) for s, t, _ in subscriber.seen if t >= start_us}
    # Up to each sensor's last notification: a sensor's readings arrive in order, but the
    # server stopping with the node cuts off whatever was still in flight for the others.
    last_us: dict[str, int] = {}
    for sensor, stamp in seen:
        last_us[sensor] = max(stamp, last_us.get(sensor, stamp))
    marks = ",".join("?" for _ in subscriber.sensor_ids)
    with sqlite3.connect(db) as conn:
        written = {
            (sensor, round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e6))
            for sensor, ts in conn.execute(
                f"SELECT sensor_id, timestamp FROM sensor_readings WHERE sensor_id IN ({marks})",
                subscriber.sensor_ids,
            )
        }
    window = {(s, t) for s, t in written if start_us <= t <= last_us.get(s, start_us - 1)}
    latencies = [received - t / 1e6 for _, t, received in subscriber.seen if t >= start_us]
    # Steady state: from settle_s after subscribing, past any start-up effects.
    steady_us = start_us + round(settle_s * 1e6)
    steady = [received - t / 1e6 for _, t, received in subscriber.seen if t >= steady_us]
    return {
        "subscribed": True,
        "sampled_sensors": len(subscriber.sensor_ids),
        "rows_in_window": len(window),
        "rows_received": len(window & seen),
        "received_share": round(len(window & seen) / len(window), 6) if window else None,
        "latency_p50_s": rounded(percentile(latencies, 0.5)),
        "latency_p95_s": rounded(percentile(latencies, 0.95)),
        "latency_max_s": rounded(max(latencies) if latencies else None),
        "steady_after_s": settle_s,
        "steady_latency_p50_s": rounded(percentile(steady, 0.5)),
        "steady_latency_p95_s": rounded(percentile(steady, 0.95)),
        "steady_latency_max_s": rounded(max(steady) if steady else None),
    }


def _summary(
    measured: Measured, rows: dict[str, Any], sensors: int, skip_s: float = 0.0
) -> dict[str, Any]:
    # Lags are sampled once a second from the start; skip start-up (and, with OPC UA,
    # the address-space build, which shares the interpreter with the node loop).
    steady = measured.lags[3 + int(skip_s) :] or measured.lags
    return {
        **rows,
        "all_sensors_within_1pct": rows["sensors_within_1pct"] == sensors,
        "cpu_cores_used": round(measured.cpu_cores, 3),
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "newest_row_lag_p50_s": rounded(percentile(steady, 0.5)),
        "newest_row_lag_p95_s": rounded(percentile(steady, 0.95)),
        "newest_row_lag_max_s": rounded(max(steady) if steady else None),
    }


def one_run(work: Path, sensors: int, seconds: int, sample: int, opcua: bool) -> dict[str, Any]:
    name = "opcua" if opcua else "baseline"
    port = _free_port()
    extra = f"opcua: {{enabled: true, host: 127.0.0.1, port: {port}}}\n" if opcua else ""
    write_config(work / f"{name}.yaml", f"data/{name}.db", extra)
    db = work / "data" / f"{name}.db"
    subscriber = None
    if opcua:
        subscriber = Subscriber(port, _sample_ids(work / "ids", sample), time.time() + seconds)
        subscriber.start()
    args = ["--config", f"{name}.yaml", "--identity", "ids", "--seed", "1"]
    measured = run_node([*args, "--run-time", str(seconds)], work, watch_db=db)
    if measured.exit_status != 0:
        raise SystemExit(f"faces: node ({name}) failed:\n{measured.stderr[-2000:]}")
    build_s = _build_seconds(measured.stderr)
    result = _summary(measured, check_rows([db], sensors, seconds), sensors, build_s or 0.0)
    if subscriber is not None:
        subscriber.join()
        settle_s = min(30.0, seconds / 5)
        result["opcua"] = {"build_s": build_s, **_delivery(db, subscriber, settle_s)}
        during = measured.lags[: 3 + int(build_s or 0)]
        result["opcua"]["newest_row_lag_max_during_build_s"] = rounded(max(during, default=0.0))
    return result


def _build_seconds(node_stderr: str) -> float | None:
    """How long the OPC UA server took to build and bind, from its ``opcua started`` event."""
    for line in node_stderr.splitlines():
        if '"opcua started"' in line:
            return round(float(json.loads(line)["ms"]) / 1000, 1)
    return None


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--sensors", type=int, default=1000)
    args.add_argument("--seconds", type=int, default=120)
    args.add_argument("--sample", type=int, default=20)
    options = args.parse_args()
    sensors, seconds, sample = (
        (20, 40, 5) if options.smoke else (options.sensors, options.seconds, options.sample)
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_identities(work / "ids", sensors)
        baseline = one_run(work, sensors, seconds, sample, opcua=False)
        served = one_run(work, sensors, seconds, sample, opcua=True)
    delivery = served["opcua"]
    result = {
        "sensors": sensors,
        "readings_per_second_each": 1,
        "seconds": seconds,
        "cpu_cores_available": os.cpu_count(),
        "baseline": baseline,
        "opcua": served,
        "cpu_ratio_to_baseline": round(served["cpu_cores_used"] / baseline["cpu_cores_used"], 2)
        if baseline["cpu_cores_used"]
        else None,
        "received_share": delivery.get("received_share"),
        "latency_p95_s": delivery.get("latency_p95_s"),
    }
    path = save("faces", result, options.out)
    print(
        f"faces: {sensors} sensors × 1/s for {seconds}s over OPC UA: all within 1 %: "
        f"{served['all_sensors_within_1pct']} (baseline {baseline['all_sensors_within_1pct']}), "
        f"lag p95 {served['newest_row_lag_p95_s']}s "
        f"(baseline {baseline['newest_row_lag_p95_s']}s), "
        f"{served['cpu_cores_used']} cores (baseline {baseline['cpu_cores_used']}), "
        f"{delivery.get('rows_received')}/{delivery.get('rows_in_window')} sampled rows received, "
        f"latency p95 {delivery.get('latency_p95_s')}s  → {path}"
    )
    if not delivery.get("subscribed"):
        raise SystemExit(f"faces: the client never subscribed: {delivery.get('error')}")


if __name__ == "__main__":
    main()
