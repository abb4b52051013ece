"""HTTP control of equipment sensors: GET /sensors, GET /sensors/{id}, faults and maintenance
forced and ended through the monitor, under the same rules as /anomalies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import query, write_config, write_identity
from nodeproc import NodeProcess, http, http_json, monitoring_url
from polling import wait_until

MONITORING = {"enabled": True, "host": "127.0.0.1", "port": 0}


def start_mixed_node(folder: Path, **monitoring: Any) -> NodeProcess:
    """A live node of classic sensor A and compressor C1 at 20 readings/s into node.db."""
    write_config(
        folder / "config.yaml",
        simulation={"readings_per_second": 20, "seed": 5},
        anomalies={"enabled": False},
        database={"path": "node.db", "flush_interval_seconds": 0.05},
        monitoring={**MONITORING, **monitoring},
    )
    (folder / "ids").mkdir()
    write_identity(folder / "ids" / "a.json", id="A")
    write_identity(folder / "ids" / "c1.json", id="C1", type="compressor", location="Hall 2")
    return NodeProcess(["--config", "config.yaml", "--identity", "ids"], folder)


def machine_rows(db: Path, where: str = "1") -> int:
    try:
        return int(query(db, f"SELECT count(*) FROM compressor_readings WHERE {where}")[0][0])
    except Exception:  # the file or table is not there yet
        return 0


def test_sensors_show_type_state_health_and_last_reading(tmp_path: Path) -> None:
    """GET /sensors lists both sensors with their type and table; GET /sensors/C1 gives the
    machine's state, health, fault and last reading, /status its state too; an unknown id
    is 404."""
    db = tmp_path / "node.db"
    with start_mixed_node(tmp_path) as node:
        url = monitoring_url(node)
        wait_until(lambda: machine_rows(db) > 5, what="compressor rows")
        status, listing = http_json("GET", f"{url}/sensors")
        assert status == 200
        by_id = {s["id"]: s for s in listing["sensors"]}
        assert by_id["A"]["type"] == "temperature_vibration"
        assert by_id["A"]["table"] == "sensor_readings" and by_id["A"]["state"] is None
        assert by_id["C1"]["table"] == "compressor_readings"
        assert by_id["C1"]["state"] in ("loaded", "unloaded") and by_id["C1"]["health"] == 1.0
        status, detail = http_json("GET", f"{url}/sensors/C1")
        assert status == 200
        assert detail["fault"] is None and "leak" in detail["faults"]
        assert set(detail["last_reading"]) >= {"timestamp", "power_kw", "pressure_bar"}
        assert detail["identity"]["location"] == "Hall 2"
        machines = {
            s["identity"]["id"]: s["machine"]
            for s in http_json("GET", f"{url}/status")[1]["sensors"]
        }
        assert machines["A"] is None and machines["C1"]["table"] == "compressor_readings"
        status, missing = http_json("GET", f"{url}/sensors/NOPE")
        assert status == 404 and "no sensor 'NOPE'" in missing["error"]
        assert node.stop() == 0


def test_faults_and_maintenance_are_forced_and_ended(tmp_path: Path) -> None:
    """POST /sensors/C1/faults starts a leak at the next reading with the asked severity;
    DELETE ends it; POST /sensors/C1/maintenance services the machine; rows show each."""
    db = tmp_path / "node.db"
    with start_mixed_node(tmp_path) as node:
        url = monitoring_url(node)
        wait_until(lambda: machine_rows(db) > 5, what="compressor rows")
        status, body = http_json(
            "POST",
            f"{url}/sensors/C1/faults",
            {"fault": "leak", "severity": 0.8, "duration_seconds": 300},
        )
        assert status == 200, body
        assert body["status"] == "forced" and body["fault"] == "leak"
        wait_until(lambda: machine_rows(db, "fault = 'leak'") > 10, what="leak rows")
        assert http_json("GET", f"{url}/sensors/C1")[1]["fault"] == "leak"
        status, body = http_json("DELETE", f"{url}/sensors/C1/faults")
        assert status == 200 and body["faults"] == ["leak"]
        ended_at = machine_rows(db)
        wait_until(lambda: machine_rows(db) > ended_at + 20, what="rows after the end")
        status, body = http_json("POST", f"{url}/sensors/C1/maintenance", {"duration_seconds": 2})
        assert status == 200 and body["status"] == "maintenance"
        wait_until(lambda: machine_rows(db, "maintenance = 1") >= 40, what="maintenance rows")
        assert node.stop() == 0
    faults = [f for (f,) in query(db, "SELECT fault FROM compressor_readings ORDER BY id")]
    runs = [f for i, f in enumerate(faults) if i == 0 or faults[i - 1] != f]
    assert runs == [None, "leak", None]
    started = query(
        db, "SELECT DISTINCT fault_started_at FROM compressor_readings WHERE fault IS NOT NULL"
    )
    first_leak = query(db, "SELECT min(timestamp) FROM compressor_readings WHERE fault = 'leak'")
    assert started == first_leak  # the fault began with the reading after the request
    service = query(db, "SELECT DISTINCT state FROM compressor_readings WHERE maintenance = 1")
    assert service == [("maintenance",)]
    assert query(db, "SELECT count(*) FROM compressor_readings WHERE maintenance = 1") == [(40,)]
    assert query(db, "SELECT count(*) FROM sensor_readings WHERE sensor_id = 'A'")[0][0] > 0


BAD_FAULTS: list[tuple[str, object, int, str]] = [
    ("C1", {"fault": "meltdown"}, 400, "fault: must be one of leak, "),
    ("C1", {"fault": "leak", "severity": 1.5}, 400, "severity: must be above 0 and at most 1"),
    ("C1", {"fault": "leak", "severity": True}, 400, "(got True)"),
    ("C1", {"fault": "leak", "duration_seconds": -1}, 400, "duration_seconds: must be a number"),
    ("C1", {"fault": "leak", "sevrity": 1}, 400, "unknown field 'sevrity'"),
    ("C1", [1], 400, "body must be a JSON object"),
    ("A", {"fault": "leak"}, 400, "temperature_vibration sensor, which has anomaly episodes"),
    ("NOPE", {"fault": "leak"}, 404, "no sensor 'NOPE'"),
]


def test_machine_control_follows_the_rules_of_anomaly_control(tmp_path: Path) -> None:
    """Fault and maintenance control need the token (401), JSON (415) and control on (403),
    like /anomalies; malformed requests get 400 saying what was expected, and reads stay
    open."""
    token = {"Authorization": "Bearer s3cret-token"}
    with start_mixed_node(tmp_path, token="s3cret-token") as node:
        url = monitoring_url(node)
        faults = f"{url}/sensors/C1/faults"
        assert http("POST", faults, body={"fault": "leak"})[0] == 401
        assert http("DELETE", faults)[0] == 401
        assert http("POST", f"{url}/sensors/C1/maintenance")[0] == 401
        plain = {**token, "Content-Type": "text/plain"}
        assert http("POST", faults, raw=b'{"fault": "leak"}', headers=plain)[0] == 415
        for sensor, body, code, expected in BAD_FAULTS:
            status, _, answer = http("POST", f"{url}/sensors/{sensor}/faults", body, headers=token)
            assert status == code and expected.encode() in answer, (body, answer)
        assert http("PUT", faults, headers=token)[0] == 405
        assert http("GET", f"{url}/sensors")[0] == 200
        assert node.stop() == 0
    assert not node.named("fault forced")
    write_config(
        tmp_path / "config.yaml",
        database={"path": "off.db"},
        monitoring={**MONITORING, "control": False},
    )
    with NodeProcess(["--config", "config.yaml", "--identity", "ids"], tmp_path) as node:
        url = monitoring_url(node)
        assert http("POST", f"{url}/sensors/C1/faults", body={"fault": "leak"})[0] == 403
        assert http("POST", f"{url}/sensors/C1/maintenance")[0] == 403
        assert http("GET", f"{url}/sensors/C1")[0] == 200
        assert node.stop() == 0
