"""A CI-sized month of every built-in model, backfilled by a node, agrees with the
catalogue in the report: fault onsets, state shares, and the shift factors the shares of
the scheduled machines follow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_main, write_config, write_identity
from test_equipment_cli import sensorfleet

from sensorfleet.equipment import load_catalogue

# One reading a minute: 43,200 rows a machine for the month.
RATE = "0.0166667"


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
    run = run_main(
        ["--config", "config.yaml", "--identity", "ids", "--backfill", "30d",
         "--readings-per-second", RATE, "--db", "month.db", "--seed", "3"],
        tmp_path,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = sensorfleet(
        ["report", "month.db", "--config", "config.yaml", "--readings-per-second", RATE,
         "--format", "json"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    equipment = json.loads(result.stdout)["equipment"]
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
    assert not json.loads(result.stdout)["flags"]
