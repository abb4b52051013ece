"""The report's equipment part: fault onsets against the config's catalogue by model,
firmware and manufacturer, and state shares with the energy drawn in each state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import ROOT, clean_env, query, write_config, write_identity
from test_equipment_cli import sensorfleet

from sensorfleet.equipment import load_catalogue

postgres_server = servers.postgres_server
postgres_url = servers.postgres_url

# Leaks made frequent and short, so three days hold dozens of onsets.
FREQUENT_LEAKS = (
    "models:\n  compressor:\n    faults:\n"
    "      leak: {onset_per_hour: 0.5, duration_seconds: [600, 1200]}\n"
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of two compressors (firmware 1.3 and 1.4) and a classic sensor, every
    10 s, with the frequent-leak catalogue."""
    folder = tmp_path_factory.mktemp("fleet")
    (folder / "plant.yaml").write_text(FREQUENT_LEAKS)
    write_config(folder / "config.yaml", equipment={"catalogues": ["plant.yaml"]})
    for sensor_id, firmware in (("C1", "1.3"), ("C2", "1.4")):
        write_identity(folder / f"{sensor_id}.json", id=sensor_id, type="compressor",
                       firmware_version=firmware, location="Factory A")  # fmt: skip
    write_identity(folder / "a.json", id="A")
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "main.py"), "--config", "config.yaml"),
            *("--identity", "C1.json", "C2.json", "a.json", "--db", "fleet.db", "--seed", "6"),
            *("--backfill", "3d", "--readings-per-second", "0.1"),
        ],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


def report(folder: Path, config: str) -> dict[str, Any]:
    result = sensorfleet(["report", "fleet.db", "--config", config, "--format", "json"], folder)
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_fault_onsets_agree_with_the_catalogue_the_nodes_ran(fleet: Path) -> None:
    """With the catalogue the node ran, fault onsets per model, firmware, manufacturer and
    location agree with the expected counts; firmware 1.3 (×1.5) sees more than 1.4 (×0.7)."""
    data = report(fleet, "config.yaml")
    faults = {(r["dimension"], r["group"]): r for r in data["equipment"]["fault_onsets"]}
    assert set(faults) == {
        ("type", "compressor"),
        ("firmware_version", "1.3"),
        ("firmware_version", "1.4"),
        ("manufacturer", "SensorTech"),
        ("location", "Factory A"),
    }
    assert faults[("location", "Factory A")]["onsets"] == faults[("type", "compressor")]["onsets"]
    assert all(row["status"] == "ok" for row in faults.values()), faults
    compressor = faults[("type", "compressor")]
    onsets = query(
        fleet / "fleet.db",
        "SELECT count(*) FROM (SELECT DISTINCT sensor_id, fault_started_at "
        "FROM compressor_readings WHERE fault IS NOT NULL)",
    )[0][0]
    assert compressor["onsets"] == onsets > 20
    assert (
        faults[("firmware_version", "1.3")]["expected"]
        > faults[("firmware_version", "1.4")]["expected"]
    )
    assert compressor["sensors"] == 2 and 0 < compressor["hours_at_risk"] <= 2 * 72


def test_a_config_expecting_fewer_faults_is_flagged(fleet: Path, tmp_path: Path) -> None:
    """Compared with the built-in catalogue (leaks 2,500 times rarer), the observed onsets
    are flagged above what is expected, in the JSON flags and the text verdict."""
    write_config(fleet / "builtin.yaml")
    data = report(fleet, "builtin.yaml")
    flagged = [line for line in data["flags"] if line.startswith("fault onsets of model")]
    assert flagged and "compressor" in flagged[0]
    text = sensorfleet(["report", "fleet.db", "--config", "builtin.yaml"], fleet).stdout
    assert "Machine fault onsets by model" in text and "▲ above" in text


def test_state_shares_and_energy_per_state(fleet: Path) -> None:
    """Each model's state shares add up to one, and the energy drawn per state adds up to
    what the compressors' kWh counters advanced over the run."""
    data = report(fleet, "config.yaml")
    states = data["equipment"]["states"]
    assert {row["model"] for row in states} == {"compressor"}
    assert abs(sum(row["share"] for row in states) - 1) < 1e-9
    assert {"loaded", "unloaded"} <= {row["state"] for row in states}
    counted = query(
        fleet / "fleet.db",
        "SELECT sum(d) FROM (SELECT energy_kwh - lag(energy_kwh) OVER "
        "(PARTITION BY sensor_id ORDER BY id) AS d FROM compressor_readings) WHERE d >= 0",
    )[0][0]
    assert sum(row["energy_kwh"] for row in states) == pytest.approx(counted)
    loaded = next(row for row in states if row["state"] == "loaded")
    unloaded = next(row for row in states if row["state"] == "unloaded")
    # Loaded draws 55 kW against 12 kW unloaded: more energy per reading.
    assert loaded["energy_kwh"] / loaded["rows"] > 2 * unloaded["energy_kwh"] / unloaded["rows"]


def test_hidden_labels_are_noted_not_reported(tmp_path: Path) -> None:
    """A table whose labels are hidden gives a note pointing at the truth file, no rates."""
    write_config(tmp_path / "config.yaml", labels={"mode": "hidden"})
    write_identity(tmp_path / "c.json", id="C1", type="compressor")
    run = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--config", "config.yaml", "--identity",
         "c.json", "--db", "fleet.db", "--backfill", "1h"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    data = report(tmp_path, "config.yaml")
    assert data["equipment"] == {"fault_onsets": [], "states": [], "shifts": [], "machines": []}
    assert any("labels hidden (in the truth file)" in note for note in data["notes"])


def test_html_report_plots_each_models_channels(fleet: Path) -> None:
    """The HTML report has a Machines section with the fault and state tables and, for the
    compressor, one chart holding every one of its channels."""
    result = sensorfleet(
        ["report", "fleet.db", "--config", "config.yaml", "--html", "r.html"], fleet
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = (fleet / "r.html").read_text()
    machines = page[page.index("<h2>Machines</h2>") :]
    assert "Machine fault onsets by firmware" in machines
    assert "Operating states by model" in machines
    figure = machines[machines.index("<b>compressor</b>") : machines.index("</figure>")]
    for channel in load_catalogue().get("compressor").channels:
        assert channel.name in figure, channel.name


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_central_store_reports_the_same_machines(
    fleet: Path, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """After `sensorfleet sync` into a central SQLite file or PostgreSQL database, the report
    of that store shows the same fault onsets and energy per state as the node file's."""
    if kind == "sqlite":
        central = str(tmp_path / "central.db")
        sink = f"sqlite:///{central}"
    else:
        central = sink = request.getfixturevalue("postgres_url")
    # A cursor of its own: each store gets every row, whatever an earlier test marked.
    cursor = str(tmp_path / "cursor.json")
    synced = sensorfleet(["sync", "fleet.db", "--sink", sink, "--once", "--cursor", cursor], fleet)
    assert synced.returncode == 0, synced.stderr[-2000:]
    args = ["report", central, "--config", "config.yaml", "--format", "json"]
    result = sensorfleet(args, fleet)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)["equipment"]
    expected = report(fleet, "config.yaml")["equipment"]
    # Times are epoch arithmetic in each engine: equal to well within a microsecond an hour.
    for got, want in zip(
        [*found["fault_onsets"], *found["states"]],
        [*expected["fault_onsets"], *expected["states"]],
        strict=True,
    ):
        assert got == {
            key: pytest.approx(value, rel=1e-6) if isinstance(value, float) else value
            for key, value in want.items()
        }


def test_state_shares_agree_with_the_catalogue_at_the_shift_factors(fleet: Path) -> None:
    """Among rows without a fault, the compressors' loaded share is the duty the catalogue
    expects at each row's production factor (shifts and weekends), within its tolerance;
    fault and maintenance rows have no expectation."""
    data = report(fleet, "config.yaml")
    states = {row["state"]: row for row in data["equipment"]["states"]}
    loaded, unloaded = states["loaded"], states["unloaded"]
    assert loaded["status"] == unloaded["status"] == "ok", states
    assert abs(loaded["healthy_share"] - loaded["expected"]) <= loaded["tolerance"] == 0.01
    assert loaded["expected"] + unloaded["expected"] == pytest.approx(1)
    # Demand 4.5 of 9 m³/min at full production: below a half once nights and weekends count.
    assert 0.15 < loaded["expected"] < 0.5
    for name in ("fault", "maintenance"):
        assert name not in states or states[name]["expected"] is None
    assert not [line for line in data["flags"] if line.startswith("state ")]


def test_a_catalogue_with_another_demand_flags_the_state_shares(fleet: Path) -> None:
    """Compared with a catalogue whose plant draws 8 of 9 m³/min, the observed loaded share
    is flagged below what is expected, in the flags and the text table."""
    (fleet / "thirsty.yaml").write_text(
        FREQUENT_LEAKS + "    operation: {demand: {demand_m3_min: 8.0}}\n"
    )
    write_config(fleet / "thirsty_config.yaml", equipment={"catalogues": ["thirsty.yaml"]})
    data = report(fleet, "thirsty_config.yaml")
    flagged = [line for line in data["flags"] if line.startswith("state compressor loaded")]
    assert flagged, data["flags"]
    full_rate = next(row for row in data["equipment"]["shifts"] if row["factor"] == 1.0)
    assert full_rate["status"] == "below" and full_rate["expected"] == pytest.approx(8 / 9)
    assert any(line.startswith("busy share of compressor") for line in data["flags"])
    text = sensorfleet(["report", "fleet.db", "--config", "thirsty_config.yaml"], fleet).stdout
    assert "Operating states by model" in text and "▼ below" in text
