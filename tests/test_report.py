"""``sensorfleet report`` end to end: simulator-written databases, the CLI as a subprocess.

The fleet database is written once per session by the real simulator with a
fixed seed and start time. Its config keeps anomaly episodes short (a few
seconds) so a day of readings holds thousands of episodes and the
observed-versus-expected checks have the power to tell a right config from
a wrong one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pty
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import servers
import yaml
from conftest import clean_env, query

from sensorfleet.node.store import SCHEMA

# The three queries of the original documentation's "Analyzing the Data", verbatim,
# as shipped for users in queries/.
QUERIES = Path(__file__).resolve().parents[1] / "queries"
FIRMWARE_RATES_SQL = (QUERIES / "firmware_anomaly_rates.sql").read_text()
TYPES_BY_MODEL_SQL = (QUERIES / "anomaly_types_by_model.sql").read_text()
SYNC_STATUS_SQL = (QUERIES / "sync_status.sql").read_text()

postgres_server = servers.postgres_server
postgres_url = servers.postgres_url

START = "2026-01-05T00:00:00Z"

# Short episodes: many of them per day, so intervals are tight.
FAST_ANOMALIES: dict[str, Any] = {
    "probability": 0.05,
    "types": {
        "trend": {"duration_seconds": 8},
        "pattern": {"duration_seconds": 12, "period_seconds": 6},
        "missing_data": {"duration_seconds": 4},
        "noise": {"duration_seconds": 6},
    },
}

FLEET: list[dict[str, str]] = [
    {"id": "FACTORY_1_OLD", "location": "Factory A - Line 1", "manufacturer": "SensorTech",
     "model": "TempVibe-2000", "firmware_version": "1.3"},
    {"id": "FACTORY_1_NEW", "location": "Factory A - Line 1", "manufacturer": "SensorTech",
     "model": "TempVibe-2000", "firmware_version": "1.4"},
    {"id": "WAREHOUSE_1", "location": "Warehouse B - Section 1", "manufacturer": "DataSense",
     "model": "TempVibe-1000", "firmware_version": "1.3"},
    {"id": "OUTDOOR_1", "location": "Outdoor - Area 1", "manufacturer": "VibrationPlus",
     "model": "TempVibe-3000", "firmware_version": "1.4"},
]  # fmt: skip


def write_report_config(path: Path, **sections: Any) -> Path:
    """A quiet node config with the fast anomaly settings, sections merged over them."""
    data: dict[str, Any] = {
        "simulation": {"readings_per_second": 1},
        "anomalies": json.loads(json.dumps(FAST_ANOMALIES)),
        "logging": {"file": None, "format": "json", "level": "WARNING"},
        "monitoring": {"enabled": False},
        "config_reload": {"enabled": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_fleet(folder: Path, members: list[dict[str, str]] = FLEET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for member in members:
        identity = {"type": "temperature_vibration", **member}
        (folder / f"{member['id'].lower()}.json").write_text(json.dumps(identity))
    return folder


def simulate(db: Path, config: Path, identities: Path, backfill: str = "1d", seed: int = 7) -> Path:
    """Write ``db`` with the real simulator (backfill, fixed seed and start)."""
    result = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "run", "--config", str(config),
         "--identity", str(identities), "--backfill", backfill, "--start", START,
         "--seed", str(seed), "--db", str(db)],
        env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return db


def report(*args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``python -m sensorfleet report ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", "report", *args],
        cwd=cwd, env=clean_env(extra_env), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def report_json(*args: str, cwd: Path | None = None) -> dict[str, Any]:
    result = report(*args, "--format", "json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="session")
def fleet_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report_config(tmp_path_factory.mktemp("report-config") / "config.yaml")


@pytest.fixture(scope="session")
def fleet_db(tmp_path_factory: pytest.TempPathFactory, fleet_config: Path) -> Path:
    """Four sensors (the demo fleet), one simulated day at one reading a second."""
    folder = tmp_path_factory.mktemp("report-fleet")
    return simulate(folder / "fleet.db", fleet_config, write_fleet(folder / "identities"))


@pytest.fixture(scope="session")
def small_db(tmp_path_factory: pytest.TempPathFactory, fleet_config: Path) -> Path:
    """Two sensors, three simulated hours: for tests about files rather than statistics."""
    folder = tmp_path_factory.mktemp("report-small")
    members = [FLEET[0], FLEET[3]]
    return simulate(folder / "small.db", fleet_config, write_fleet(folder / "ids", members),
                    backfill="3h", seed=5)  # fmt: skip


@pytest.fixture(scope="session")
def fleet_json(fleet_db: Path, fleet_config: Path) -> dict[str, Any]:
    return report_json(str(fleet_db), "--config", str(fleet_config))


def test_firmware_rates_equal_the_documented_query(
    fleet_db: Path, fleet_json: dict[str, Any]
) -> None:
    """Rows, anomalies and anomaly percentage by firmware match the original SQL exactly."""
    expected = {row[0]: row[1:] for row in query(fleet_db, FIRMWARE_RATES_SQL)}
    got = {
        r["group"]: (r["rows"], r["anomalies"], round(100 * r["observed"], 2))
        for r in fleet_json["anomaly_rate"]["firmware_version"]
    }
    assert got == expected
    assert set(expected) == {"1.3", "1.4"}


def test_types_by_model_equal_the_documented_query(
    fleet_db: Path, fleet_json: dict[str, Any]
) -> None:
    """Counts and percentages of anomaly types by model match the original SQL exactly."""
    expected = {(m, t): (c, p) for m, t, c, p in query(fleet_db, TYPES_BY_MODEL_SQL)}
    got = {
        (s["group"], s["anomaly_type"]): (s["count"], round(100 * s["observed"], 2))
        for s in fleet_json["anomaly_types"]["model"]
        if s["count"] > 0
    }
    assert got == expected
    assert len(expected) == 15  # three models, five types each


def test_sync_status_equals_the_documented_query(small_db: Path, tmp_path: Path) -> None:
    """Total, synced and synced percentage by firmware match the original SQL on a partly synced file."""  # noqa: E501
    db = tmp_path / "partly.db"
    shutil.copy(small_db, db)
    with sqlite3.connect(db) as conn:  # what a collector does after shipping rows
        conn.execute("UPDATE sensor_readings SET synced = 1 WHERE id % 3 = 0 OR sensor_id = ?",
                     ("OUTDOOR_1",))  # fmt: skip
    data = report_json(str(db))
    expected = {row[0]: row[1:] for row in query(db, SYNC_STATUS_SQL)}
    got = {
        r["group"]: (r["total"], r["synced"], round(100 * r["share"], 2))
        for r in data["sync"]["firmware_version"]
    }
    assert got == expected
    (source,) = data["sync"]["source"]
    total, synced = query(db, "SELECT COUNT(*), SUM(synced) FROM sensor_readings")[0]
    assert (source["total"], source["synced"]) == (total, synced)
    assert source["unsynced"] == total - synced


def test_text_table_shows_the_query_numbers(fleet_db: Path, fleet_config: Path) -> None:
    """The default terminal table prints each firmware's rows and percentage as the SQL does."""
    result = report(str(fleet_db), "--config", str(fleet_config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for firmware, total, anomalies, percentage in query(fleet_db, FIRMWARE_RATES_SQL):
        row = next(line for line in lines if line.startswith(f"{firmware} "))
        assert f"{total:,}" in row and f"{anomalies:,}" in row and f"{percentage:.2f}%" in row
    assert "Anomaly types by model" in result.stdout
    assert "Sync status by source" in result.stdout
    assert "\033[" not in result.stdout  # no colour codes when stdout is not a terminal


def test_the_headline_counts_in_words(tmp_path: Path, fleet_config: Path, fleet_db: Path) -> None:
    """One sensor reads '1 sensor', not '1 sensors'; the fleet's four read '4 sensors'."""
    one = simulate(
        tmp_path / "one.db", fleet_config, write_fleet(tmp_path / "ids", FLEET[:1]), "1h"
    )
    headline = report(str(one), "--config", str(fleet_config)).stdout.splitlines()[0]
    assert "1 source · 3,600 rows · 1 sensor · " in headline
    fleet = report(str(fleet_db), "--config", str(fleet_config)).stdout.splitlines()[0]
    assert " · 4 sensors · " in fleet


def test_csv_and_markdown_carry_the_same_numbers(
    fleet_db: Path, fleet_config: Path, fleet_json: dict[str, Any]
) -> None:
    """CSV holds every JSON figure as one tidy row; Markdown shows them as tables."""
    result = report(str(fleet_db), "--config", str(fleet_config), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    rates = {(r["dimension"], r["group"]): r for r in rows if r["section"] == "anomaly_rate"}
    for dimension, groups in fleet_json["anomaly_rate"].items():
        for group in groups:
            row = rates[(dimension, group["group"])]
            assert int(row["total"]) == group["rows"]
            assert int(row["count"]) == group["anomalies"]
            assert float(row["observed"]) == pytest.approx(group["observed"])
            assert row["status"] == group["status"]
    shares = [r for r in rows if r["section"] == "anomaly_type"]
    assert len(shares) == sum(len(v) for v in fleet_json["anomaly_types"].values())
    markdown = report(str(fleet_db), "--config", str(fleet_config), "--format", "markdown")
    assert markdown.returncode == 0
    assert "## Anomaly rate by firmware" in markdown.stdout
    assert "|---|---:|---:|---:|---:|---:|---:|---|" in markdown.stdout


def test_correct_config_raises_no_flag(fleet_json: dict[str, Any]) -> None:
    """Given the config the fleet ran with, every observed value agrees with the expected one."""
    summary = fleet_json["summary"]
    assert fleet_json["flags"] == []
    assert summary["flagged"] == 0
    assert summary["comparisons"] >= 40
    statuses = {r["status"] for rows in fleet_json["anomaly_rate"].values() for r in rows}
    assert statuses == {"ok"}
    # The intervals are tight enough to mean something: ±20 % of the rate or better.
    for rate in fleet_json["anomaly_rate"]["firmware_version"]:
        assert rate["high"] - rate["low"] < 0.4 * rate["observed"]


def test_wrong_config_flags_the_groups_it_gets_wrong(
    fleet_db: Path, fleet_json: dict[str, Any], tmp_path: Path
) -> None:
    """A config claiming firmware 1.4 is as noisy as baseline and TempVibe-1000 has no extra outages is flagged exactly there."""  # noqa: E501
    wrong = write_report_config(
        tmp_path / "wrong.yaml",
        profiles={
            "firmware": {"1.4": {"probability_multiplier": 1.0}},
            "models": {"TempVibe-1000": {"type_weight_multipliers": {"missing_data": 1.0}}},
        },
    )
    data = report_json(str(fleet_db), "--config", str(wrong))
    firmware = {r["group"]: r for r in data["anomaly_rate"]["firmware_version"]}
    assert firmware["1.4"]["status"] == "below"  # observed lower than the wrong config says
    assert firmware["1.4"]["expected"] > firmware["1.4"]["high"]
    assert firmware["1.3"]["status"] == "ok"
    shares = {(s["group"], s["anomaly_type"]): s for s in data["anomaly_types"]["model"]}
    assert shares[("TempVibe-1000", "missing_data")]["status"] == "above"
    assert shares[("TempVibe-2000", "missing_data")]["status"] == "ok"
    # Same data, same observed numbers: only the expectation moved.
    same = fleet_json["anomaly_rate"]["firmware_version"]
    assert [r["observed"] for r in data["anomaly_rate"]["firmware_version"]] == [
        r["observed"] for r in same
    ]
    assert any("firmware 1.4" in flag for flag in data["flags"])


def test_database_from_another_config_is_flagged(tmp_path: Path, fleet_config: Path) -> None:
    """A fleet simulated at a 3 % anomaly probability, checked against the 5 % config, is flagged low; the 3 % config passes."""  # noqa: E501
    low = write_report_config(tmp_path / "low.yaml", anomalies={"probability": 0.03})
    members = [FLEET[0], FLEET[1]]
    db = simulate(tmp_path / "low.db", low, write_fleet(tmp_path / "ids", members), seed=11)
    data = report_json(str(db), "--config", str(fleet_config))
    rates = data["anomaly_rate"]["firmware_version"]
    assert {r["group"]: r["status"] for r in rates} == {"1.3": "below", "1.4": "below"}
    assert data["summary"]["flagged"] >= 2
    agreeing = report_json(str(db), "--config", str(low))
    assert agreeing["flags"] == []


def test_a_different_reading_rate_is_noted(tmp_path: Path, fleet_config: Path) -> None:
    """Nodes run at 4 readings a second, checked against a 1-per-second config: a note names the flag to pass."""  # noqa: E501
    fast = write_report_config(tmp_path / "fast.yaml", simulation={"readings_per_second": 4})
    db = simulate(tmp_path / "fast.db", fast, write_fleet(tmp_path / "ids", FLEET[:1]), "30m")
    data = report_json(str(db), "--config", str(fleet_config))
    assert any("pass --readings-per-second 4" in note for note in data["notes"]), data["notes"]
    matched = report_json(str(db), "--config", str(fleet_config), "--readings-per-second", "4")
    assert matched["notes"] == []
    assert matched["summary"]["readings_per_second"] == 4


def test_names_missing_from_the_profiles_are_noted(tmp_path: Path, fleet_config: Path) -> None:
    """A firmware version the profiles do not know is expected at the neutral rate, and a note says so."""  # noqa: E501
    member = {**FLEET[0], "id": "BETA_1", "firmware_version": "2.0-beta"}
    db = simulate(tmp_path / "beta.db", fleet_config, write_fleet(tmp_path / "ids", [member]), "1h")
    data = report_json(str(db), "--config", str(fleet_config))
    (rate,) = data["anomaly_rate"]["firmware_version"]
    assert rate["expected"] == pytest.approx(0.05)  # no firmware multiplier, SensorTech 1.0
    assert any("firmware_version '2.0-beta'" in note for note in data["notes"]), data["notes"]


def test_empty_database_is_reported_as_empty(tmp_path: Path) -> None:
    """A node file with the table but no rows is a valid source with nothing to compare."""
    db = tmp_path / "empty.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA)
    result = report(str(db))
    assert result.returncode == 0, result.stderr
    assert "0 rows" in result.stdout
    assert result.stdout.rstrip().endswith("No readings in the sources: nothing to compare.")


def test_bad_sources_get_one_line_each_and_the_rest_is_reported(
    small_db: Path, fleet_config: Path, tmp_path: Path
) -> None:
    """A missing file, a non-SQLite file and a database without the table: one line each, exit 2, the good file still reported."""  # noqa: E501
    text = tmp_path / "notes.db"
    text.write_text("these are not the readings you are looking for\n")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE inventory (item TEXT)")
    missing = tmp_path / "missing.db"
    result = report(str(missing), str(text), str(small_db), str(other),
                    "--config", str(fleet_config))  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, result.stderr
    assert f"{missing}: no such file or folder" in errors[0]
    assert f"{text}: not an SQLite database" in errors[1]
    assert str(other) in errors[2] and "no sensor_readings table" in errors[2]
    assert "inventory" in errors[2]
    assert "Traceback" not in result.stderr
    total = query(small_db, "SELECT COUNT(*) FROM sensor_readings")[0][0]
    assert f"{total:,} rows" in result.stdout


def test_only_bad_sources_exit_2_without_a_report(tmp_path: Path) -> None:
    """When no source is usable there is no report, only the problem lines and exit 2."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    result = report(str(empty), str(tmp_path / "nope.db"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("error: ") == 2
    assert "empty file" in result.stderr


def test_a_named_pipe_is_refused_at_once_and_skipped_in_a_folder(
    small_db: Path, tmp_path: Path
) -> None:
    """A FIFO named as the database is one line and exit 2, not a report waiting forever
    for a writer; a FIFO in a folder is passed over and the folder's databases reported."""
    fifo = tmp_path / "r.db"
    os.mkfifo(fifo)
    result = report(str(fifo), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {fifo}: is a named pipe (FIFO), not a regular file; expected a database file"
    )
    folder = tmp_path / "data"
    folder.mkdir()
    os.mkfifo(folder / "pipe.db")
    shutil.copy(small_db, folder / "node.db")
    result = report(str(folder), "--format", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert [Path(s["label"]).name for s in json.loads(result.stdout)["sources"]] == ["node.db"]


def test_bad_options_are_one_line_each(small_db: Path, tmp_path: Path) -> None:
    """An unreadable config, a bad confidence and --sensor without --html are reported before reading."""  # noqa: E501
    broken = tmp_path / "config.yaml"
    broken.write_text("anomalies:\n  probability: 3\n")
    result = report(str(small_db), "--config", str(broken))
    assert result.returncode == 2
    assert "anomalies.probability" in result.stderr and "Traceback" not in result.stderr
    result = report(str(small_db), "--confidence", "95", "--sensor", "X")
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        "error: --confidence: expected a level between 0 and 1, e.g. 0.95 (got 95.0)",
        "error: --sensor: only meaningful with --html (it picks the plotted sensors)",
    ]


def test_folder_is_expanded_and_config_yaml_is_the_default(
    small_db: Path, fleet_config: Path, tmp_path: Path
) -> None:
    """A folder argument reads every database inside; ./config.yaml supplies expected values."""
    data_dir = tmp_path / "data"
    (data_dir / "node-b").mkdir(parents=True)
    shutil.copy(small_db, data_dir / "node-a.db")
    with sqlite3.connect(data_dir / "node-b" / "node-b.sqlite") as conn:
        source = sqlite3.connect(small_db)
        source.backup(conn)
        source.close()
        conn.execute("DELETE FROM sensor_readings WHERE sensor_id != 'OUTDOOR_1'")
    (data_dir / "README.txt").write_text("not a database")
    shutil.copy(fleet_config, tmp_path / "config.yaml")
    data = report_json("data", cwd=tmp_path)
    assert [Path(s["label"]).name for s in data["sources"]] == ["node-a.db", "node-b.sqlite"]
    assert data["summary"]["expected_from"] == "config.yaml"
    total = query(small_db, "SELECT COUNT(*) FROM sensor_readings")[0][0]
    warehouse = query(small_db, "SELECT COUNT(*) FROM sensor_readings "
                                "WHERE sensor_id = 'OUTDOOR_1'")[0][0]  # fmt: skip
    assert data["summary"]["rows"] == total + warehouse


def test_central_store_from_sync_is_read_and_not_double_counted(
    small_db: Path, fleet_config: Path, tmp_path: Path
) -> None:
    """The SQLite store written by 'sensorfleet sync' reports like its node file, and the two together count each row once."""  # noqa: E501
    node = tmp_path / "node.db"
    shutil.copy(small_db, node)
    central = tmp_path / "central.db"
    synced = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "sync", "--once", "--sink",
         f"sqlite:///{central}", str(node)],
        env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr[-2000:]
    alone = report_json(str(central), "--config", str(fleet_config))
    from_node = report_json(str(node), "--config", str(fleet_config))
    assert alone["sources"][0]["kind"] == "central"
    assert alone["anomaly_rate"] == from_node["anomaly_rate"]
    assert alone["anomaly_types"] == from_node["anomaly_types"]
    total = from_node["summary"]["rows"]
    assert from_node["sync"]["source"][0]["synced"] == total  # sync marked every row
    both = report_json(str(node), str(central), "--config", str(fleet_config))
    assert both["summary"]["rows"] == total
    assert [s["total"] for s in both["sync"]["source"]] == [total, total]
    assert any("counted once" in note for note in both["notes"])


def test_postgresql_central_store_reports_like_its_node_file(
    small_db: Path, fleet_config: Path, tmp_path: Path, postgres_url: str
) -> None:
    """A PostgreSQL store filled by 'sensorfleet sync' gives the node file's numbers and plots; a bad URL is one redacted line."""  # noqa: E501
    node = tmp_path / "node.db"
    shutil.copy(small_db, node)
    synced = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "sync", "--once", "--sink", postgres_url, str(node)],
        env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr[-2000:]
    from_pg = report_json(postgres_url, "--config", str(fleet_config))
    from_node = report_json(str(node), "--config", str(fleet_config))
    assert from_pg["sources"][0]["kind"] == "central"
    assert from_pg["summary"]["rows"] == from_node["summary"]["rows"]
    assert (from_pg["summary"]["first"], from_pg["summary"]["last"]) == (
        from_node["summary"]["first"],
        from_node["summary"]["last"],
    )
    assert from_pg["anomaly_rate"] == from_node["anomaly_rate"]
    assert from_pg["anomaly_types"] == from_node["anomaly_types"]
    out = tmp_path / "pg.html"
    plotted = report(postgres_url, "--html", str(out), "--sensor", "OUTDOOR_1")
    assert plotted.returncode == 0, plotted.stderr
    assert "<figcaption><b>OUTDOOR_1</b>" in out.read_text()
    closed = f"postgresql://reader:s3cret@127.0.0.1:{servers.free_port()}/fleet"
    refused = report(closed, str(node))
    assert refused.returncode == 2
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: postgresql://reader:***@127.0.0.1:") and "cannot connect" in line
    assert "s3cret" not in refused.stderr


def test_report_never_writes_the_databases(small_db: Path, tmp_path: Path) -> None:
    """Reading is read-only: the file's bytes are unchanged and nothing is written to its WAL."""
    db = tmp_path / "ro.db"
    shutil.copy(small_db, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    result = report(str(db))
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    # A WAL reader may leave the empty -wal/-shm pair SQLite needs; never any data.
    assert {p.name for p in tmp_path.iterdir()} <= {"ro.db", "ro.db-wal", "ro.db-shm"}
    wal = tmp_path / "ro.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_progress_on_request(small_db: Path) -> None:
    """--progress writes progress lines to stderr even when it is not a terminal; stdout stays clean."""  # noqa: E501
    quiet = report(str(small_db), "--format", "json")
    assert "report:" not in quiet.stderr
    shown = report(str(small_db), "--format", "json", "--progress")
    assert shown.returncode == 0
    lines = [line for line in shown.stderr.splitlines() if line.startswith("report: 1/1")]
    assert lines and lines[-1].endswith("done 100%")
    json.loads(shown.stdout)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_terminal_gets_colour_and_a_self_erasing_progress_line(small_db: Path) -> None:
    """On a terminal, checks are coloured and progress is one line rewritten in place, then erased."""  # noqa: E501
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "sensorfleet", "report", str(small_db)],
        stdout=out_slave, stderr=err_slave, env=clean_env(), close_fds=True,
    )  # fmt: skip
    os.close(out_slave)
    os.close(err_slave)
    stdout, stderr = _read_all(out_master).decode(), _read_all(err_master).decode()
    assert child.wait(timeout=120) == 0
    os.close(out_master)
    os.close(err_master)
    assert "\033[32mok\033[0m" in stdout  # green checks
    assert "\r" in stderr and "report: 1/1" in stderr and "\n" not in stderr.strip("\r\n")
    assert stderr.endswith("\r")  # the progress line is blanked out at the end


def test_html_without_matplotlib_says_how_to_install(small_db: Path, tmp_path: Path) -> None:
    """Without the optional matplotlib, --html fails with one line naming the install command."""
    blocked = (
        "import sys; sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "from sensorfleet.cli import main; sys.exit(main())"
    )
    out = tmp_path / "r.html"
    result = subprocess.run(
        [sys.executable, "-c", blocked, "report", str(small_db), "--html", str(out)],
        env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --html: the HTML report needs matplotlib, which is not installed; "
        "pip install 'sensorfleet[report]'"
    ]
    assert not out.exists()
    # Text reports do not need it.
    text = subprocess.run(
        [sys.executable, "-c", blocked, "report", str(small_db)],
        env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr


def test_every_option_is_documented() -> None:
    """docs/report.md mentions every option of `sensorfleet report --help`."""
    result = report("--help")
    assert result.returncode == 0
    options = set(re.findall(r"(--[a-z][a-z-]+)", result.stdout)) - {"--help"}
    text = (Path(__file__).resolve().parents[1] / "docs" / "report.md").read_text()
    assert options and {o for o in options if o not in text} == set()


def test_markdown_escapes_text_from_the_data(tmp_path: Path) -> None:
    """Ids and locations with Markdown characters are shown literally, not as formatting."""
    config = write_report_config(tmp_path / "config.yaml")
    member = {**FLEET[0], "id": "S_1*x", "location": "Plant | <b>[A](http://x)</b>"}
    db = simulate(tmp_path / "m.db", config, write_fleet(tmp_path / "ids", [member]), "1h")
    result = report(str(db), "--config", str(config), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "Plant \\| \\<b\\>\\[A\\](http://x)\\</b\\>" in result.stdout
    assert "<b>" not in result.stdout and "[A](" not in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    widths = {line.replace("\\|", "").count("|") for line in rows}
    assert len(rows) > 3 and all(w >= 3 for w in widths)
