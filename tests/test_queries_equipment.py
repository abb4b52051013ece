"""The plant and site queries shipped in queries/, run on a node's backfilled equipment
tables: each finds the machines it is meant to find and no others."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_main, write_config, write_identity

QUERIES = ROOT / "queries"
HEALTHY, WORN = "9.1", "9.2"  # firmware versions: fault multiplier 0, and 1

# The plant runs around the clock at full rate (so a healthy machine's OEE stays high
# whatever the hour and weekday of the run). The worn machines' failure as the test
# defines it: a bearing failing over one day from the first minutes on (friction raises
# torque, damaged surfaces spoil parts), and a temperature sensor drifting 0.5 K an
# hour; every other fault off.
WORN_FACTORY = """
models:
  production_machine:
    schedule:
      shifts: [{name: all_day, start_hour: 0, end_hour: 24, factor: 1.0}]
      weekend_factor: 1.0
    faults:
      bearing_failure:
        onset_per_hour: 60
        duration_seconds: [86400, 86400]
        effects:
          torque_nm: {mode: scale, to: 1.3}
      motor_overheating: {onset_per_hour: 0}
      hydraulic_pressure_loss: {onset_per_hour: 0}
      tool_wear: {onset_per_hour: 0}
      welding_drift: {onset_per_hour: 0}
      pneumatic_failure: {onset_per_hour: 0}
      coolant_failure: {onset_per_hour: 0}
      robot_positioning_drift: {onset_per_hour: 0}
      electrical_fault: {onset_per_hour: 0}
    instrument_faults:
      sensor_drift:
        onset_per_hour: 60
        amount: 0.5
        duration_seconds: [172800, 172800]
        severity: [1, 1]
      vibration_sensor_dropout: {onset_per_hour: 0}
    channels:
      parts_rejected:
        rate: "120 / 3600 * production * is_running * min(0.02 + 1.2 * severity_bearing_failure, 1)"
"""

# The worn lamp flickers for hours at a time.
WORN_SITES = """
models:
  lamp:
    faults:
      flicker: {onset_per_hour: 2, duration_seconds: [7200, 7200]}
      stuck_off: {onset_per_hour: 0}
      stuck_on: {onset_per_hour: 0}
"""


def backfill(
    tmp_path: Path, catalogue: str, machines: dict[str, tuple[str, str]], hours: int
) -> Path:
    """Run a node over ``machines`` (id → (type, firmware)) backfilling ``hours``; its database."""
    (tmp_path / "worn.yaml").write_text(catalogue)
    profiles = {
        "firmware": {
            HEALTHY: {"probability_multiplier": 0.0},
            WORN: {"probability_multiplier": 1.0},
        }
    }
    write_config(
        tmp_path / "config.yaml", equipment={"catalogues": ["worn.yaml"]}, profiles=profiles
    )
    (tmp_path / "ids").mkdir()
    for sensor, (type_name, firmware) in machines.items():
        location = "Restaurant 1" if sensor.endswith("1") else "Supermarket 2"
        write_identity(
            tmp_path / "ids" / f"{sensor}.json",
            id=sensor,
            type=type_name,
            firmware_version=firmware,
            location=location,
        )
    result = run_main(
        [
            "--config",
            "config.yaml",
            "--identity",
            "ids",
            "--backfill",
            f"{hours}h",
            "--seed",
            "7",
            "--db",
            "plant.db",
        ],
        tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp_path / "plant.db"


def run_query(db: Path, name: str) -> list[dict[str, Any]]:
    """The rows of queries/``name`` as dictionaries."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute((QUERIES / name).read_text())]


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty hours of two healthy and two worn production machines."""
    machines = {
        "OK1": ("production_machine", HEALTHY),
        "OK2": ("production_machine", HEALTHY),
        "WORN1": ("production_machine", WORN),
        "WORN2": ("production_machine", WORN),
    }
    return backfill(tmp_path_factory.mktemp("factory"), WORN_FACTORY, machines, 20)


@pytest.mark.parametrize(
    "query",
    [
        "factory_active_faults.sql",
        "factory_critical_readings.sql",
        "factory_bearing_early_warning.sql",
        "factory_low_oee.sql",
        "factory_sensor_health.sql",
        "factory_multi_sensor_anomalies.sql",
    ],
)
def test_factory_queries_find_the_worn_machines(factory: Path, query: str) -> None:
    """Each plant query returns the two machines with a failing bearing and a drifting
    sensor, and neither healthy one."""
    rows = run_query(factory, query)
    assert {row["sensor_id"] for row in rows} == {"WORN1", "WORN2"}, rows


def test_factory_query_columns_say_what_was_found(factory: Path) -> None:
    """The rows carry the fault, its status and its size: bearing_failure open for most of
    the run, a WARNING or CRITICAL bearing, OEE under 70 %, the drifting sensor named,
    three or more affected sensor types."""
    for row in run_query(factory, "factory_active_faults.sql"):
        assert row["fault"] == "bearing_failure" and row["duration_minutes"] > 600
    for row in run_query(factory, "factory_bearing_early_warning.sql"):
        assert row["bearing_health_status"] in ("WARNING", "CRITICAL")
    assert all(row["avg_oee"] < 70 for row in run_query(factory, "factory_low_oee.sql"))
    for row in run_query(factory, "factory_sensor_health.sql"):
        assert row["instrument_fault"] == "sensor_drift" and row["drift_percentage"] > 5
        assert 0.7 < row["days_since_calibration"] <= 20 / 24  # never serviced in the run
    for row in run_query(factory, "factory_multi_sensor_anomalies.sql"):
        assert {"vibration", "torque"} <= set(row["affected_sensor_types"].split(", "))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day of two ovens, two fans and two lamps (one flickering) at two sites."""
    machines = {
        "OVEN1": ("oven", HEALTHY),
        "OVEN2": ("oven", HEALTHY),
        "FAN1": ("fan", HEALTHY),
        "FAN2": ("fan", HEALTHY),
        "LAMP1": ("lamp", HEALTHY),
        "LAMP2": ("lamp", WORN),
    }
    return backfill(tmp_path_factory.mktemp("sites"), WORN_SITES, machines, 24)


def test_oven_hourly_averages_match_the_rows(sites: Path) -> None:
    """The hourly query has one row per oven and hour, whose average is the mean of that
    hour's readings."""
    rows = run_query(sites, "sites_oven_hourly.sql")
    assert {row["sensor_id"] for row in rows} == {"OVEN1", "OVEN2"}
    with sqlite3.connect(sites) as conn:
        hours = conn.execute(
            "SELECT count(DISTINCT sensor_id || substr(timestamp, 1, 13)) FROM oven_readings"
        ).fetchone()[0]
        row = rows[5]
        mean = conn.execute(
            "SELECT avg(temperature_c), count(*) FROM oven_readings WHERE sensor_id = ? "
            "AND substr(timestamp, 1, 13) = ?",
            (row["sensor_id"], row["hour"][:13]),
        ).fetchone()
    assert len(rows) == hours
    assert abs(row["avg_temperature_c"] - mean[0]) < 0.06 and row["readings"] == mean[1]
    assert {row["location"] for row in rows} == {"Restaurant 1", "Supermarket 2"}


def test_fan_performance_lists_every_fan_while_on(sites: Path) -> None:
    """Each fan has one row; its speeds while on average about 900 rpm within 0-1000."""
    rows = run_query(sites, "sites_fan_performance.sql")
    assert {row["sensor_id"] for row in rows} == {"FAN1", "FAN2"}
    for row in rows:
        assert 850 < row["avg_rpm"] < 910 and 0 <= row["min_rpm"] <= row["max_rpm"] <= 1000


def test_lamp_state_changes_follow_lag_and_catch_the_flicker(sites: Path) -> None:
    """Every change of lamp_on is one row, alternating on and off; the flickering lamp
    switches far more often than the healthy one, and its changes carry the fault."""
    rows = run_query(sites, "sites_lamp_state_changes.sql")
    with sqlite3.connect(sites) as conn:
        values = {
            sensor: [
                v
                for (v,) in conn.execute(
                    "SELECT lamp_on FROM lamp_readings WHERE sensor_id = ? ORDER BY timestamp",
                    (sensor,),
                )
            ]
            for sensor in ("LAMP1", "LAMP2")
        }
    for sensor, series in values.items():
        changes = [row for row in rows if row["sensor_id"] == sensor]
        assert len(changes) == sum(a != b for a, b in itertools.pairwise(series))
        assert all(row["from_state"] != row["to_state"] for row in changes)
    healthy = [row for row in rows if row["sensor_id"] == "LAMP1"]
    flickering = [row for row in rows if row["sensor_id"] == "LAMP2"]
    assert len(flickering) > 10 * max(len(healthy), 1)
    assert any(row["fault"] == "flicker" for row in flickering)
