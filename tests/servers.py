"""Real servers and real node databases for the sync tests.

PostgreSQL and Mosquitto are started from the Debian binaries on free
127.0.0.1 ports, Kafka is the ``tansu`` broker (installed by
``scripts/setup.sh --test``) with in-memory storage; the HTTP receiver is a
real ``http.server`` on a thread.
A missing binary fails the test when ``CI`` is set (the CI machine must have
it) and skips it otherwise. Node databases are written by the real node
(``python -m sensorfleet run``) as subprocesses.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from polling import wait_until

ROOT = Path(__file__).resolve().parents[1]


def missing(what: str) -> None:
    """Fail in CI (the binary must be installed there), skip elsewhere."""
    message = f"{what} is not installed; run scripts/setup.sh --test"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    wait_until(lambda: _listening(port), timeout, f"a listener on 127.0.0.1:{port}", 0.05)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


# -- node databases ------------------------------------------------------------


def node_env() -> dict[str, str]:
    """The environment for node subprocesses: no overrides, quiet logs."""
    from sensorfleet.node.config import ENVIRONMENT_KEYS
    from sensorfleet.node.identity import ENVIRONMENT_FIELDS

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ENVIRONMENT_KEYS
        and k not in ENVIRONMENT_FIELDS
        and k not in ("CONFIG_FILE", "IDENTITY_FILE", "SYNC_SINK")
    }
    env.update(PYTHONUNBUFFERED="1", LOG_FILE="null", LOG_FORMAT="json", MONITORING_ENABLED="false")
    env["CONFIG_RELOAD_ENABLED"] = "false"
    return env


def node_command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sensorfleet", "run", "--db", str(db), *args]


def make_node_db(db: Path, seed: int = 1, backfill: str = "10m", sensor_id: str = "") -> Path:
    """Write a node database with the real node: ``backfill`` of history at 1 reading/s."""
    env = node_env()
    if sensor_id:
        env["SENSOR_ID"] = sensor_id
    result = subprocess.run(
        node_command(db, "--backfill", backfill, "--seed", str(seed)),
        cwd=db.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return db


def start_node(
    db: Path, seed: int, rate: float = 100.0, run_time: str = "0"
) -> subprocess.Popen[str]:
    """A live node writing ``rate`` readings/s into ``db`` until stopped."""
    return subprocess.Popen(
        node_command(
            db, "--seed", str(seed), "--readings-per-second", str(rate), "--run-time", run_time
        ),
        cwd=db.parent,
        env=node_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_process(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """SIGTERM, wait, and return stderr (SIGKILL if it does not stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def node_rows(db: Path) -> list[tuple[Any, ...]]:
    """Every reading of a node file, with its database id, as the central side keys it."""
    from sensorfleet.node.readings import COLUMNS

    with contextlib.closing(sqlite3.connect(db)) as conn:
        (database_id,) = conn.execute("SELECT database_id FROM sensorfleet_meta").fetchone()
        rows = conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM sensor_readings ORDER BY id")
        return [(database_id, *row) for row in rows]


def sqlite_rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


# -- PostgreSQL ------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields the URL of its ``postgres`` database."""
    bindir = _postgres_bin()
    if bindir is None:
        missing("PostgreSQL (Debian package postgresql)")
        raise AssertionError("unreachable")
    base = Path(tempfile.mkdtemp(prefix="sensorfleet-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; run it as the package's own user.
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60",
        "-o", options, "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


# -- Mosquitto -------------------------------------------------------------------


@pytest.fixture(scope="session")
def mosquitto_port() -> Iterator[int]:
    """A Mosquitto broker on a free port (anonymous, no persistence)."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if binary is None:
        missing("Mosquitto (Debian package mosquitto)")
        raise AssertionError("unreachable")
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="sensorfleet-mqtt-"))
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
    )
    os.chmod(folder, 0o755)
    os.chmod(conf, 0o644)
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        stop_process(proc, timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


class Subscriber:
    """A real MQTT client collecting every JSON message on a topic."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self._ready = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *_: self._ready.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            self.topics.append(msg.topic)
            self.messages.append(json.loads(msg.payload))

        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        assert self._ready.wait(10), "subscription not acknowledged"

    def wait_rows(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.row_count() < count:
            time.sleep(0.02)
        return [row for message in list(self.messages) for row in self._rows(message)]

    @staticmethod
    def _rows(message: dict[str, Any]) -> list[dict[str, Any]]:
        """A batch document's rows, or the one reading a per-reading message is."""
        rows: list[dict[str, Any]] = message.get("rows", [message])
        return rows

    def row_count(self) -> int:
        return sum(len(self._rows(m)) for m in list(self.messages))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- HTTP receiver ---------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """A real HTTP server that stores POSTed batches; can be told to answer errors."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.batches: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.requests = 0
        self.fail_next = 0
        self.fail_after = 0  # batches taken before fail_next starts refusing
        self.fail_status = 503
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ingest"

    def rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [row for batch in self.batches for row in batch["rows"]]


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.requests += 1
            failing = (
                self.server.fail_next > 0 and len(self.server.batches) >= self.server.fail_after
            )
            if failing:
                self.server.fail_next -= 1
            else:
                self.server.batches.append(json.loads(body))
                self.server.headers_seen.append(dict(self.headers))
        status = self.server.fail_status if failing else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        # A refusal repeats the request line, as many real services do in their errors.
        refusal = json.dumps({"ok": False, "request": self.requestline}).encode()
        self.wfile.write(refusal if failing else b'{"ok": true}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    """A local HTTP server on a free port collecting batches."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- Kafka (tansu) -----------------------------------------------------------------


def tansu_binary() -> str | None:
    """The tansu broker binary: on PATH, or where ``cargo install`` puts it."""
    found = shutil.which("tansu")
    cargo = Path.home() / ".cargo" / "bin" / "tansu"
    return found or (str(cargo) if cargo.exists() else None)


class Kafka:
    """A running tansu broker: its address, topic creation, and a real consumer."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"

    def url(self, topic: str, query: str = "") -> str:
        return f"kafka://{self.bootstrap}/{topic}" + (f"?{query}" if query else "")

    def create_topic(self, name: str, partitions: int = 3) -> str:
        """Create a topic (tansu does not create topics on first use); return its name."""
        result = subprocess.run(
            [self.binary, "topic", "create", name, "--broker", f"tcp://{self.bootstrap}",
             "--partitions", str(partitions)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout
        return name

    def consume(
        self, topics: list[str], count: int, timeout: float = 30.0, idle: float = 0.0
    ) -> list[dict[str, Any]]:
        """Every message of ``topics`` from the beginning, until ``count`` arrived (and then
        ``idle`` seconds pass without more) or ``timeout``; each as
        ``{"topic", "partition", "key", "value", "timestamp"}``."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"test-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        try:
            metadata = consumer.list_topics(timeout=10)
            consumer.assign(
                [
                    TopicPartition(topic, partition, OFFSET_BEGINNING)
                    for topic in topics
                    for partition in metadata.topics[topic].partitions
                ]
            )
            found: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            last = time.monotonic()
            while time.monotonic() < deadline:
                if len(found) >= count and time.monotonic() - last >= idle:
                    break
                for message in consumer.consume(1000, 0.1):
                    assert message.error() is None, message.error()
                    last = time.monotonic()
                    found.append(
                        {
                            "topic": message.topic(),
                            "partition": message.partition(),
                            "offset": message.offset(),
                            "key": message.key().decode() if message.key() else None,
                            "value": json.loads(message.value()),
                        }
                    )
            return found
        finally:
            consumer.close()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Kafka]:
    """A tansu Kafka broker on a free port with in-memory storage."""
    binary = tansu_binary()
    if binary is None:
        missing("tansu (cargo install --locked tansu --version 0.6.0 --features dynostore)")
        raise AssertionError("unreachable")
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="sensorfleet-kafka-"))
    address = f"tcp://127.0.0.1:{port}"
    with open(folder / "broker.log", "w") as log:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", address, "--advertised-listener-url", address,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        wait_for_port(port)
        yield Kafka(binary, port)
    finally:
        stop_process(proc, timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def kafka_topic(kafka_broker: Kafka) -> str:
    """A new, empty topic with 3 partitions on the session's broker."""
    return kafka_broker.create_topic(f"t-{uuid.uuid4().hex[:10]}")
