"""A CI-sized month of every built-in model, backfilled by a node, agrees with the
catalogue in the report: fault onsets, state shares, and the shift factors the shares of
the scheduled machines follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_main, write_config, write_identity
from test_equipment_cli import sensorfleet

from sensorfleet.equipment import load_catalogue

# One reading a minute: 43,200 rows a machine for the month.
RATE = "0.0166667"


def backfill_and_report(
    folder: Path, identities: list[str], days: int, seed: int
) -> dict[str, Any]:
    """Backfill ``days`` of ``identities`` at one reading a minute, and the JSON report."""
    run = run_main(
        ["--config", "config.yaml", "--identity", *identities, "--backfill", f"{days}d",
         "--readings-per-second", RATE, "--db", "run.db", "--seed", str(seed)],
        folder,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = sensorfleet(
        ["report", "run.db", "--config", "config.yaml", "--readings-per-second", RATE,
         "--format", "json"],
        folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.slow
def test_a_backfilled_month_of_every_model_agrees_with_the_catalogue(tmp_path: Path) -> None:
    """Thirty days of one machine of each built-in type: every state's share among rows
    without a fault is its expected share at the rows' production factors, the scheduled
    machines are busy for each shift's factor, every fault onset count is within its
    interval, and the report flags nothing."""
    names = load_catalogue().names()
    write_config(tmp_path / "config.yaml")
    (tmp_path / "ids").mkdir()
    for name in names:
        write_identity(tmp_path / "ids" / f"{name}.json", id=f"M_{name}", type=name)
    data = backfill_and_report(tmp_path, ["ids"], 30, 3)
    equipment = data["equipment"]
    checked = [row for row in equipment["states"] if row["expected"] is not None]
    assert {row["model"] for row in checked} == set(names)
    for row in checked:
        assert row["status"] == "ok", row
        assert row["rows"] > 500 or row["expected"] < 0.05, row
    assert all(row["status"] == "ok" for row in equipment["fault_onsets"])
    # The scheduled machines, at each shift and weekend factor, are busy for that factor.
    shifts = equipment["shifts"]
    assert {row["model"] for row in shifts} == {"compressor", "hydraulic_pump", "injection_molding"}
    assert {row["factor"] for row in shifts} == {0.15, 0.3, 0.5, 1.0}
    assert all(row["status"] == "ok" for row in shifts), shifts
    assert not data["flags"]


@pytest.mark.slow
def test_machines_in_another_time_zone_are_checked_at_their_local_shifts(tmp_path: Path) -> None:
    """The rows do not carry their node's time zone: the report finds the offset under
    which a Tokyo moulding machine's busy rows fit the schedule (+9 h), and its shifts
    agree there (read as UTC, its full-rate hours would mix with night hours)."""
    write_config(tmp_path / "config.yaml")
    write_identity(
        tmp_path / "m.json", id="M_TOKYO", type="injection_molding", timezone="Asia/Tokyo"
    )
    data = backfill_and_report(tmp_path, ["m.json"], 21, 4)
    shifts = data["equipment"]["shifts"]
    assert {row["utc_offset_hours"] for row in shifts} == {9.0}
    assert all(row["status"] == "ok" for row in shifts), shifts
    assert not data["flags"]
