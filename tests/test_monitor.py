"""The HTTP endpoint over real HTTP against a live node: health, metrics, status, control."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nodeproc import (
    QUICK_FAILURES,
    count_rows,
    http,
    http_json,
    lock_held_by_another_process,
    monitoring_url,
    rows,
    start_node,
    start_node_of_sensors,
    wait_until,
    write_identity,
)
from prometheus_client.parser import text_string_to_metric_families

from sensorfleet.edges.monitor import ROUTES, STALL_SECONDS, Monitor
from sensorfleet.node.clock import ManualClock
from sensorfleet.node.config import build_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors

MONITORING = {"enabled": True, "host": "127.0.0.1", "port": 0}


def metrics(url: str) -> dict[str, Any]:
    """Scrape /metrics and parse it with the Prometheus client's own parser."""
    status, headers, body = http("GET", f"{url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def samples(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def test_health_metrics_and_status_describe_the_running_node(tmp_path: Path) -> None:
    """/healthz, /metrics and /status report identity, counts and reloads as they change."""
    config = {"monitoring": MONITORING, "config_reload": {"enabled": True}}
    with start_node(tmp_path, config, {"firmware_version": "1.3"}) as node:
        started = node.wait_for("monitoring started")
        assert started["host"] == "127.0.0.1" and started["port"] > 0
        url = monitoring_url(node)

        status, health = http_json("GET", f"{url}/healthz")
        assert status == 200 and health["status"] == "ok"

        families = metrics(url)
        on_disk = count_rows(tmp_path / "data.db")
        info = families["sensorfleet_node_info"]  # the text format carries info as a gauge
        assert info.type == "gauge" and info.samples[0].value == 1.0
        assert info.samples[0].labels["sensor_id"] == "T1"
        assert info.samples[0].labels["firmware_version"] == "1.3"
        written = samples(families["sensorfleet_readings_written"])
        assert families["sensorfleet_readings_written"].type == "counter"
        assert set(written) == {
            (("anomaly_type", kind),)
            for kind in ("none", "spike", "trend", "pattern", "missing_data", "noise")
        }
        assert 0 < sum(written.values()) <= on_disk  # counted only once committed
        for name in (
            "sensorfleet_write_errors",
            "sensorfleet_write_retries",
            "sensorfleet_buffered_rows",
            "sensorfleet_rows_dropped",
            "sensorfleet_last_reading_timestamp_seconds",
            "sensorfleet_last_write_success_timestamp_seconds",
        ):
            assert name in families, name
        assert (
            abs(
                families["sensorfleet_last_reading_timestamp_seconds"].samples[0].value
                - time.time()
            )
            < 5
        )
        assert samples(families["sensorfleet_reloads"]) == {
            (("result", "applied"),): 0.0,
            (("result", "rejected"),): 0.0,
        }

        status, body = http_json("GET", f"{url}/status")
        assert status == 200
        assert body["identity"]["id"] == "T1" and body["identity"]["firmware_version"] == "1.3"
        assert body["config_hash"] == node.wait_for("node starting")["config_hash"]
        assert body["uptime_seconds"] > 0
        assert body["counts"]["rows_written"] > 0 and body["counts"]["rows_dropped"] == 0
        assert body["sensors"][0]["anomaly_episode"] is None
        assert body["health"]["code"] == 200

        (tmp_path / "node_identity.json").write_text("{ broken")
        node.wait_for("config reload rejected")
        write_identity(tmp_path / "node_identity.json", firmware_version="1.4")
        node.wait_for("config reloaded")
        families = metrics(url)
        assert families["sensorfleet_node_info"].samples[0].labels["firmware_version"] == "1.4"
        assert samples(families["sensorfleet_reloads"]) == {
            (("result", "applied"),): 1.0,
            (("result", "rejected"),): 1.0,
        }
        _, body = http_json("GET", f"{url}/status")
        assert body["reloads"]["applied"] == 1 and body["reloads"]["rejected"] == 1
        assert body["reloads"]["last_problems"][0].startswith("node_identity.json: (top level)")

        assert http("GET", f"{url}/nope")[0] == 404
        assert http("POST", f"{url}/metrics", raw=b"{}")[0] == 405
        assert http("GET", f"{url}/anomalies")[0] == 405
        assert node.stop() == 0


def test_forced_episodes_start_now_and_end_on_request(tmp_path: Path) -> None:
    """POST /anomalies forces an episode of the asked length; DELETE ends it; sensor_id targets."""
    db = tmp_path / "data.db"
    with start_node_of_sensors(
        tmp_path,
        ["A", "B"],
        simulation={"readings_per_second": 50, "seed": 2},
        anomalies={"enabled": False},
        database={"path": "data.db", "flush_interval_seconds": 0.05},
        monitoring=MONITORING,
    ) as node:
        url = monitoring_url(node)
        wait_until(lambda: count_rows(db) > 10, what="rows")

        status, body = http_json(
            "POST", f"{url}/anomalies", {"type": "noise", "duration_seconds": 1, "sensor_id": "B"}
        )
        assert status == 200, body
        assert body["sensors"] == [{"sensor_id": "B", "readings": 50}]
        _, state = http_json("GET", f"{url}/status")
        episodes = {s["identity"]["id"]: s["anomaly_episode"] for s in state["sensors"]}
        assert episodes["A"] is None and episodes["B"]["type"] == "noise"
        assert episodes["B"]["forced"] is True

        wait_until(lambda: flagged(db, "B", "noise") == 50, what="50 noise readings on B")
        wait_until(lambda: last_kind(db, "B") is None, what="B back to normal readings")
        status, body = http_json(
            "POST", f"{url}/anomalies", {"type": "pattern", "duration_seconds": 600}
        )
        assert status == 200 and len(body["sensors"]) == 2
        wait_until(lambda: flagged(db, "A", "pattern") > 10, what="pattern on A")
        status, _, body = http("DELETE", f"{url}/anomalies?sensor_id=A")
        assert status == 200
        assert json.loads(body)["sensors"] == [{"sensor_id": "A", "type": "pattern"}]
        status, body = http_json("DELETE", f"{url}/anomalies")
        assert status == 200 and body["sensors"] == [{"sensor_id": "B", "type": "pattern"}]
        settled = count_rows(db)
        wait_until(lambda: count_rows(db) > settled + 20, what="rows after the end")
        assert node.stop() == 0
    assert flagged(db, "A", "noise") == 0
    for sensor in ("A", "B"):
        kinds = [k for (k,) in rows(db, "anomaly_type", f"sensor_id = '{sensor}'")]
        runs = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
        expected = (
            [None, "pattern", None] if sensor == "A" else [None, "noise", None, "pattern", None]
        )
        assert runs == expected, f"{sensor}: {runs}"
    assert flagged(db, "A", "pattern") < 600 * 50


def last_kind(db: Path, sensor: str) -> str | None:
    kinds = rows(db, "anomaly_type", f"sensor_id = '{sensor}'")
    return kinds[-1][0] if kinds else "no rows yet"


def flagged(db: Path, sensor: str, kind: str) -> int:
    where = f"sensor_id = '{sensor}' AND anomaly_type = '{kind}' AND anomaly_flag = 1"
    return len(rows(db, "id", where))


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"not json", "body is not valid JSON"),
    (b"[1, 2]", "body must be a JSON object"),
    (b"", "empty body"),
    (b"{}", "type: must be one of spike, trend, pattern, missing_data, noise (got None)"),
    (b'{"type": "meltdown"}', "(got 'meltdown')"),
    (b'{"type": "spike", "duration_seconds": -5}', "duration_seconds: must be a number"),
    (b'{"type": "spike", "duration_seconds": "10"}', "(got '10')"),
    (b'{"type": "spike", "duration_seconds": true}', "(got True)"),
    (b'{"type": "spike", "duration_seconds": 1e12}', "at most 604800"),
    (b'{"type": "spike", "durration_seconds": 3}', "unknown field 'durration_seconds'"),
    (b'{"type": "spike", "sensor_id": "NOPE"}', "sensor_id: no sensor 'NOPE' in this node"),
    (b'{"type": "spike", "sensor_id": 7}', "sensor_id: expected text"),
    (b"[" * 20_000 + b"]" * 20_000, "body is nested too deeply"),
]


def test_invalid_control_requests_get_400_with_a_clear_message(tmp_path: Path) -> None:
    """Every malformed POST /anomalies is refused with 400 and says what was expected."""
    with start_node(tmp_path, {"monitoring": MONITORING}) as node:
        url = monitoring_url(node)
        for raw, expected in BAD_BODIES:
            status, headers, body = http("POST", f"{url}/anomalies", raw=raw)
            assert status == 400, raw
            assert headers["Content-Type"] == "application/json"
            assert expected in json.loads(body)["error"], (raw, body)
        status, _, body = http("DELETE", f"{url}/anomalies", raw=b'{"sensor_id": "NOPE"}')
        assert status == 400 and b"no sensor 'NOPE'" in body
        assert node.stop() == 0
    assert not node.named("anomaly forced")
    assert rows(tmp_path / "data.db", "DISTINCT anomaly_flag") == [(0,)]


def test_health_turns_503_while_writes_fail_and_metrics_show_the_outage(tmp_path: Path) -> None:
    """A held lock makes /healthz 503 with the reason; metrics count errors, retries and drops."""
    db = tmp_path / "data.db"
    config = {
        "monitoring": MONITORING,
        "database": {**QUICK_FAILURES, "max_buffered_rows": 30, "batch_size": 10},
    }
    with start_node(tmp_path, config) as node:
        url = monitoring_url(node)
        with lock_held_by_another_process(db):
            node.wait_for("rows dropped")
            node.wait_for("write failed", count=2)
            status, health = http_json("GET", f"{url}/healthz")
            assert status == 503
            assert health["status"] == "unhealthy"
            assert health["reason"].startswith("last write failed (")
            assert "database is locked" in health["reason"]
            families = metrics(url)
            errors = samples(families["sensorfleet_write_errors"])
            assert errors[(("error_class", "OperationalError"),)] >= 2
            assert families["sensorfleet_write_retries"].samples[0].value >= 1
            assert families["sensorfleet_rows_dropped"].samples[0].value > 0
            assert 0 < families["sensorfleet_buffered_rows"].samples[0].value <= 30
            assert families["sensorfleet_consecutive_write_failures"].samples[0].value >= 2
        node.wait_for("write recovered")
        status, health = http_json("GET", f"{url}/healthz")
        assert status == 200 and health["status"] == "ok"
        dropped = metrics(url)["sensorfleet_rows_dropped"].samples[0].value
        assert node.stop() == 0
    assert node.summary()["rows_dropped"] == dropped


def test_endpoint_answers_while_the_loop_waits_on_a_locked_database(tmp_path: Path) -> None:
    """HTTP never touches SQLite: it answers at once while the writer sits in a long busy wait."""
    db = tmp_path / "data.db"
    config = {"monitoring": MONITORING, "database": {"busy_timeout_ms": 4000, "retry_attempts": 2}}
    with start_node(tmp_path, config) as node:
        url = monitoring_url(node)
        with lock_held_by_another_process(db):
            time.sleep(0.3)  # the loop is now blocked inside BEGIN IMMEDIATE
            for path in ("/healthz", "/metrics", "/status"):
                began = time.monotonic()
                status = http("GET", f"{url}{path}")[0]
                # A request that waited on SQLite would take the 4 s busy timeout.
                assert status == 200 and time.monotonic() - began < 2.5, path
            status, body = http_json("POST", f"{url}/anomalies", {"type": "spike"})
            assert status == 202 and body["status"] == "queued"
        node.wait_for("anomaly forced")
        settled = count_rows(db)
        wait_until(lambda: count_rows(db) > settled + 5, what="rows after the lock")
        assert node.stop() == 0
    assert len(rows(db, "id", "anomaly_type = 'spike'")) == 1


def test_busy_port_is_logged_and_the_node_runs_without_http(tmp_path: Path) -> None:
    """If the port is taken the node says so and keeps writing readings."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = {"monitoring": {"enabled": True, "host": "127.0.0.1", "port": port}}
        with start_node(tmp_path, config) as node:
            error = node.wait_for("monitoring unavailable")
            before = count_rows(tmp_path / "data.db")
            wait_until(lambda: count_rows(tmp_path / "data.db") > before + 10, what="rows")
            assert node.stop() == 0
    assert error["level"] == "error" and error["port"] == port
    assert error["action"] == "running without the HTTP endpoint"
    assert not node.named("monitoring started")


def test_health_reports_a_stalled_loop(tmp_path: Path) -> None:
    """When the loop has not passed for STALL_SECONDS, /healthz says so (simulated clock)."""
    start = 1_700_000_000.0
    config = build_config({"database": {"path": str(tmp_path / "a.db")}}, "test")
    identity = build_identity(DEFAULT_IDENTITY, "test", {})
    clock = ManualClock(start)
    loop = NodeLoop(config, build_sensors(config, [(None, identity)], 1, start), clock)
    monitor = Monitor(loop)
    assert monitor.health()[0] == 200
    clock.current += STALL_SECONDS + 1
    code, body = monitor.health()
    assert code == 503 and body["reason"] == f"loop stalled: no pass for {STALL_SECONDS + 1:.0f} s"
    loop.stop()
    assert "node is stopping" in monitor.health()[1]["reasons"]
    loop.close()


def test_every_route_answers_its_methods_and_refuses_the_others(tmp_path: Path) -> None:
    """Walk the routing table on a live server: each path serves what it lists (HEAD as
    GET without a body), any other method gets 405 with Allow, unknown paths 404."""
    config = build_config(
        {"database": {"path": str(tmp_path / "a.db")}, "monitoring": {"control": True}}, "test"
    )
    identity = build_identity(DEFAULT_IDENTITY, "test", {})
    loop = NodeLoop(config, build_sensors(config, [(None, identity)], 1, 0.0), ManualClock(0.0))
    monitor = Monitor(loop, port=0)
    url = f"http://127.0.0.1:{monitor.start()}"
    # Control requests run in the loop thread; none runs here, so they stay queued (202).
    served = {"GET": 200, "POST": 202, "DELETE": 202}
    try:
        for path, methods in ROUTES.items():
            for method in ("GET", "HEAD", "POST", "DELETE", "PUT"):
                body = {"type": "spike"} if method == "POST" else None
                status, headers, payload = http(method, url + path, body)
                if (method if method != "HEAD" else "GET") in methods:
                    assert status == served[method if method != "HEAD" else "GET"], (method, path)
                    assert (payload == b"") == (method == "HEAD"), (method, path)
                else:
                    assert status == 405, (method, path)
                    assert headers["Allow"] == ", ".join(methods)
        assert http("GET", f"{url}/nope")[0] == 404
        assert http("DELETE", f"{url}/nope")[0] == 404
    finally:
        monitor.stop()
        loop.close()


def test_any_other_method_gets_405_with_allow_and_a_json_body(tmp_path: Path) -> None:
    """OPTIONS, TRACE, CONNECT and invented methods get 405 with the path's Allow (404 on an
    unknown path), answered in JSON like every other refusal, not the library's 501 page."""
    config = build_config({"database": {"path": str(tmp_path / "a.db")}}, "test")
    identity = build_identity(DEFAULT_IDENTITY, "test", {})
    loop = NodeLoop(config, build_sensors(config, [(None, identity)], 1, 0.0), ManualClock(0.0))
    monitor = Monitor(loop, port=0)
    port = monitor.start()
    try:
        for method in ("OPTIONS", "TRACE", "CONNECT", "FROBNICATE"):
            for path, methods in ROUTES.items():
                status, headers, body = http(method, f"http://127.0.0.1:{port}{path}")
                assert status == 405, (method, path)
                assert headers["Allow"] == ", ".join(methods), (method, path)
                assert headers["Content-Type"] == "application/json", (method, path)
                assert "method not allowed" in json.loads(body)["error"]
            status, headers, body = http(method, f"http://127.0.0.1:{port}/nope")
            assert status == 404 and headers["Content-Type"] == "application/json", method
            assert "no such endpoint" in json.loads(body)["error"]
    finally:
        monitor.stop()
        loop.close()


def test_ipv6_host_is_served(tmp_path: Path) -> None:
    """An IPv6 bind address works (containers often set :: for all interfaces)."""
    host = "::1"
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine (enable it: sysctl net.ipv6.conf.all.disable_ipv6=0)")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind((host, 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine (sysctl net.ipv6.conf.lo.disable_ipv6=0)")
    with start_node(tmp_path, {"monitoring": {**MONITORING, "host": host}}) as node:
        port = node.wait_for("monitoring started")["port"]
        assert http("GET", f"http://[{host}]:{port}/healthz")[0] == 200
        assert node.stop() == 0


def test_control_needs_a_json_content_type(tmp_path: Path) -> None:
    """POST and DELETE without Content-Type application/json get 415 (no cross-site form post)."""
    with start_node(tmp_path, {"monitoring": MONITORING}) as node:
        url = f"{monitoring_url(node)}/anomalies"
        spike = b'{"type": "missing_data", "duration_seconds": 600000}'
        for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            status, _, body = http("POST", url, raw=spike, headers={"Content-Type": media})
            assert status == 415 and b"application/json" in body, media
        status, _, _ = http("DELETE", url, headers={"Content-Type": "text/plain"})
        assert status == 415
        charset = {"Content-Type": "application/json; charset=utf-8"}
        assert http("POST", url, body={"type": "spike"}, headers=charset)[0] == 200
        assert node.stop() == 0
    assert len(node.named("anomaly forced")) == 1


@pytest.mark.parametrize("where", ["config", "environment"])
def test_token_guards_control_and_leaves_reads_open(tmp_path: Path, where: str) -> None:
    """With monitoring.token, POST/DELETE need the bearer token (401 otherwise); GETs stay open."""
    token = "0123456789"  # digits: from the environment still a text token
    monitoring = dict(MONITORING, token=token) if where == "config" else MONITORING
    env = {"MONITORING_TOKEN": token} if where == "environment" else None
    with start_node(tmp_path, {"monitoring": monitoring}, env=env) as node:
        url = monitoring_url(node)
        control = f"{url}/anomalies"
        status, headers, _ = http("POST", control, body={"type": "spike"})
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        wrong = {"Authorization": "Bearer 0123456788"}
        assert http("POST", control, body={"type": "spike"}, headers=wrong)[0] == 401
        assert http("DELETE", control, headers=wrong)[0] == 401
        right = {"Authorization": f"Bearer {token}"}
        assert http("POST", control, body={"type": "spike"}, headers=right)[0] == 200
        assert http("DELETE", control, headers=right)[0] == 200
        for path in ("/healthz", "/metrics", "/status"):
            status, _, body = http("GET", f"{url}{path}")
            assert status == 200 and token.encode() not in body, path
        assert node.stop() == 0
    assert token not in node.stderr


def test_control_can_be_switched_off(tmp_path: Path) -> None:
    """monitoring.control: false answers 403 to POST and DELETE; reads keep working."""
    with start_node(tmp_path, {"monitoring": dict(MONITORING, control=False)}) as node:
        url = monitoring_url(node)
        assert http("POST", f"{url}/anomalies", body={"type": "spike"})[0] == 403
        assert http("DELETE", f"{url}/anomalies")[0] == 403
        assert http("GET", f"{url}/healthz")[0] == 200
        assert node.stop() == 0
    assert not node.named("anomaly forced")


def test_head_healthz_and_a_burst_of_probes(tmp_path: Path) -> None:
    """HEAD /healthz answers like GET without a body; 200 simultaneous probes all get 200."""
    with start_node(tmp_path, {"monitoring": MONITORING}) as node:
        url = monitoring_url(node)
        status, headers, body = http("HEAD", f"{url}/healthz")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
        port = url.rsplit(":", 1)[1]
        listing = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert int(listing[2]) >= 200, listing  # Send-Q of a listening socket: its backlog
        with ThreadPoolExecutor(max_workers=200) as pool:
            answers = list(pool.map(lambda _: http("GET", f"{url}/healthz")[0], range(200)))
        assert answers == [200] * 200
        assert node.stop() == 0


def test_control_reachable_from_other_hosts_without_a_token_is_logged(tmp_path: Path) -> None:
    """Listening on all interfaces with control on and no token logs 'anomaly control open';
    a token, or a loopback address, does not."""
    everywhere = dict(MONITORING, host="0.0.0.0")
    (tmp_path / "open").mkdir()
    with start_node(tmp_path / "open", {"monitoring": everywhere}) as node:
        node.wait_for("monitoring started")
        warning = node.wait_for("anomaly control open")
        assert node.stop() == 0
    assert warning["level"] == "warning" and warning["host"] == "0.0.0.0"
    assert "MONITORING_TOKEN" in warning["action"]
    guarded = dict(everywhere, token="0123456789")
    for name, monitoring in (("guarded", guarded), ("local", MONITORING)):
        (tmp_path / name).mkdir()
        with start_node(tmp_path / name, {"monitoring": monitoring}) as node:
            node.wait_for("monitoring started")
            assert node.stop() == 0
        assert not node.named("anomaly control open"), name


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_idle_connections_are_capped_and_closed(tmp_path: Path) -> None:
    """300 silent connections against a cap of 16 never make more than 16 handler threads:
    the longest idle ones are closed to let newcomers in, /healthz answers meanwhile, and
    the rest are closed after the idle timeout."""
    monitoring = dict(MONITORING, max_connections=16, idle_timeout_seconds=2)
    with start_node(tmp_path, {"monitoring": monitoring}) as node:
        url = monitoring_url(node)
        port = int(url.rsplit(":", 1)[1])
        assert http("GET", f"{url}/healthz")[0] == 200
        baseline = _threads(node.proc.pid)
        idle: list[socket.socket] = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=30))
            most = baseline
            for _ in range(3):
                assert http("GET", f"{url}/healthz")[0] == 200  # while the cap is reached
                most = max(most, _threads(node.proc.pid))
            for client in idle:  # every one is closed by the node: end of stream
                assert client.recv(1) == b""
            most = max(most, _threads(node.proc.pid))
        finally:
            for client in idle:
                client.close()
        wait_until(lambda: _threads(node.proc.pid) <= baseline, what="handler threads gone")
        assert node.stop() == 0
    assert most <= baseline + 16, (baseline, most)
