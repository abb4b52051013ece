"""docs/equipment-fleet.md: the compressor fleet walkthrough runs, and its leak costs what the
catalogue says it should."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sensorfleet.equipment import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "equipment-fleet.md"
TEXT = DOC.read_text(encoding="utf-8")
# The walkthrough backfills 30 days. A whole week covers every hour of the week once in
# every time zone, so machines whose shifts follow different local times (the identities
# have several) meet the same production over it, and only the leak sets them apart.
DAYS = 7


def doc_file(name: str) -> str:
    """The YAML block of the walkthrough whose first line is ``# NAME``."""
    for block in re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL):
        if block.startswith(f"# {name}\n"):
            return str(block)
    raise AssertionError(f"docs/equipment-fleet.md shows no {name}")


def doc_commands() -> list[str]:
    """The shell commands of the walkthrough, in order, as a reader types them."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", TEXT, flags=re.DOTALL):
        commands += [line for line in block.splitlines() if line.startswith("sensorfleet")]
    return commands


def sensorfleet(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sensorfleet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The walkthrough's commands, run on a shorter span: the plant's database file."""
    work = tmp_path_factory.mktemp("fleet")
    for name in ("leak.yaml", "leaking.yaml"):
        (work / name).write_text(doc_file(name))
    commands = doc_commands()
    assert any("--backfill 30d" in c for c in commands)
    for command in commands:
        if command.startswith("sensorfleet report"):
            continue  # read below, on the file the backfills wrote
        args = command.split()[1:]
        args = [a.replace("30d", f"{DAYS}d") for a in args]
        sensorfleet(args, work)
        if args[0] == "identities":
            # The walkthrough's mkdir/mv: the sixth machine is the leaking one.
            (work / "healthy").mkdir()
            (work / "leaking").mkdir()
            for path in sorted((work / "fleet").glob("*.json")):
                target = "leaking" if path.name == "compressor_0006.json" else "healthy"
                path.rename(work / target / path.name)
    return work / "plant.db"


def kwh_per_day(db: Path) -> dict[str, float]:
    with sqlite3.connect(db) as conn:
        return {
            sensor: (high - low) / DAYS
            for sensor, high, low in conn.execute(
                "SELECT sensor_id, max(energy_kwh), min(energy_kwh) FROM compressor_readings "
                "GROUP BY sensor_id"
            )
        }


def test_the_leaking_compressor_draws_the_leak_formulas_extra_energy(plant: Path) -> None:
    """The leak adds leak/capacity to the duty, so (P_load − P_unload)·24 h·leak/capacity
    kWh a day over the healthy machines' mean, within 5 %."""
    model = load_catalogue([plant.parent / "leak.yaml"]).get("compressor", where="test").spec
    demand = model.operation.demand
    assert demand is not None
    leak = model.faults["leak"]
    leak_m3_min = leak.effects["demand"].to * leak.severity[0]
    assert leak.severity[0] == leak.severity[1]
    power = model.channels["power_kw"].target
    assert isinstance(power, dict)
    extra = 24 * leak_m3_min / demand.capacity_m3_min * (power["loaded"] - power["unloaded"])

    daily = kwh_per_day(plant)
    assert len(daily) == 6
    leaking = daily.pop("COMPRESSOR_0006")
    healthy = sum(daily.values()) / len(daily)
    assert leaking - healthy == pytest.approx(extra, rel=0.05)
    # The healthy ones agree with each other far better than the leak's size.
    assert max(daily.values()) - min(daily.values()) < 0.2 * extra


def test_only_the_leaking_compressor_carries_the_leak_label(plant: Path) -> None:
    """Its every reading after the first is labelled leak; the healthy machines have none."""
    with sqlite3.connect(plant) as conn:
        labelled = dict(
            conn.execute(
                "SELECT sensor_id, avg(coalesce(fault, '') = 'leak') FROM compressor_readings "
                "GROUP BY sensor_id"
            ).fetchall()
        )
    assert labelled.pop("COMPRESSOR_0006") > 0.999
    assert set(labelled.values()) == {0}


def test_the_report_finds_the_leak_at_the_leaking_machines_location(plant: Path) -> None:
    """The report counts one machine fault onset, at the leaking machine's location, and its
    loaded share of all rows exceeds the healthy rows' share (the leak's extra duty)."""
    report = json.loads(sensorfleet(["report", str(plant), "--format", "json"], plant.parent))
    with sqlite3.connect(plant) as conn:
        (location,) = conn.execute(
            "SELECT DISTINCT location FROM compressor_readings WHERE sensor_id = 'COMPRESSOR_0006'"
        ).fetchone()
    onsets = {
        row["group"]: row["onsets"]
        for row in report["equipment"]["fault_onsets"]
        if row["dimension"] == "location"
    }
    assert onsets.pop(location) == 1
    assert set(onsets.values()) == {0}
    (loaded,) = [s for s in report["equipment"]["states"] if s["state"] == "loaded"]
    assert loaded["share"] > loaded["healthy_share"] + 0.02


def test_the_report_ranks_the_leaking_compressor_first_by_energy(plant: Path) -> None:
    """The report's energy per machine puts the leaking compressor first, its kWh per day
    equal to the SQL's and well above its model's median; the healthy ones sit near it."""
    report = json.loads(sensorfleet(["report", str(plant), "--format", "json"], plant.parent))
    machines = report["equipment"]["machines"]
    assert machines[0]["sensor_id"] == "COMPRESSOR_0006"
    daily = kwh_per_day(plant)
    for machine in machines:
        assert machine["kwh_per_day"] == pytest.approx(daily[machine["sensor_id"]], rel=0.01)
    leaking, *healthy = machines
    assert leaking["vs_model_median"] > 1.25
    assert all(0.9 < m["vs_model_median"] < 1.1 for m in healthy)
    text = sensorfleet(["report", str(plant)], plant.parent)
    assert "Energy per machine, against its model's median" in text
