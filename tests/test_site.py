"""Site files: factories → lines → machines, validated strictly and expanded into identities."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from sensorfleet.errors import InputError
from sensorfleet.fleet import FIRMWARE_VERSIONS, MANUFACTURERS, MODELS
from sensorfleet.node.identity import load_identity
from sensorfleet.site import load_site, parse_site, site_identities

KNOWN = ["temperature_vibration", "compressor", "fan", "hvac", "motor"]

SITE = """
factories:
  - name: Factory A
    timezone: Europe/Berlin
    lines:
      - name: Line 1
        machines:
          - {type: compressor, count: 2}
          - {type: motor, count: 1}
          - {type: compressor, count: 1}
      - name: Line 2
        machines:
          - {type: temperature_vibration, count: 1}
  - name: Plant North
    lines:
      - name: Paint shop
        machines:
          - {type: hvac, count: 1}
"""


def test_each_machine_gets_its_line_as_location_and_an_id_from_the_names() -> None:
    """Machines are numbered per type on each line, located at '<factory> - <line>'."""
    fleet = site_identities(parse_site("site.yaml", SITE, KNOWN))
    assert [(item.name, item.identity.location, item.identity.type) for item in fleet] == [
        ("factory_a_line_1_compressor_1", "Factory A - Line 1", "compressor"),
        ("factory_a_line_1_compressor_2", "Factory A - Line 1", "compressor"),
        ("factory_a_line_1_motor_1", "Factory A - Line 1", "motor"),
        ("factory_a_line_1_compressor_3", "Factory A - Line 1", "compressor"),
        ("factory_a_line_2_temperature_vibration_1", "Factory A - Line 2", "temperature_vibration"),
        ("plant_north_paint_shop_hvac_1", "Plant North - Paint shop", "hvac"),
    ]
    assert fleet[0].identity.id == "FACTORY_A_LINE_1_COMPRESSOR_1"
    assert [item.identity.timezone for item in fleet][-2:] == ["Europe/Berlin", "UTC"]


def test_makers_models_and_firmware_follow_the_classic_mix_and_the_seed() -> None:
    """A big site uses every maker, model and firmware; the same seed gives the same fleet."""
    text = "factories: [{name: F, lines: [{name: L, machines: [{type: fan, count: 300}]}]}]"
    site = parse_site("site.yaml", text, KNOWN)
    fleet = site_identities(site, seed=8)
    assert {item.identity.manufacturer for item in fleet} == set(MANUFACTURERS)
    assert {item.identity.model for item in fleet} == set(MODELS)
    firmware = Counter(item.identity.firmware_version for item in fleet)
    assert set(firmware) == set(FIRMWARE_VERSIONS) and min(firmware.values()) > 100
    assert site_identities(site, seed=8) == fleet
    assert site_identities(site, seed=9) != fleet
    mostly_new = site_identities(site, seed=8, firmware_mix={"1.3": 0.1, "1.4": 0.9})
    assert Counter(i.identity.firmware_version for i in mostly_new)["1.4"] > 240


def test_editing_one_line_leaves_every_other_machine_as_it_was() -> None:
    """A machine's identity depends on its id and the seed only, not on the rest of the file."""
    before = site_identities(parse_site("site.yaml", SITE, KNOWN), seed=2)
    edited = SITE.replace("{type: motor, count: 1}", "{type: motor, count: 4}").replace(
        "  - name: Plant North",
        "  - name: Factory B\n    lines: [{name: X, machines: "
        "[{type: fan, count: 2}]}]\n  - name: Plant North",
    )
    after = {item.name: item for item in site_identities(parse_site("s", edited, KNOWN), seed=2)}
    assert len(after) == len(before) + 5
    assert all(after[item.name] == item for item in before)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "factories: [{name: F, lines: [{name: L, machines: [{type: fan, cout: 2}]}]}]",
            "site.yaml: factories[0].lines[0].machines[0].cout: unknown key "
            "(did you mean 'count'?)",
        ),
        (
            "factories: [{name: F, lines: [{name: L, machines: [{type: pump, count: 2}]}]}]",
            "site.yaml: factories[0].lines[0].machines[0].type: unknown type 'pump'; "
            "expected one of temperature_vibration, compressor, fan, hvac, motor",
        ),
        (
            "factories: [{name: F, lines: [{name: L, machines: [{type: fan, count: true}]}]}]",
            "site.yaml: factories[0].lines[0].machines[0].count: expected a number, "
            "not true or false (got true)",
        ),
        (
            "factories: [{name: F, lines: [{name: L, machines: [{type: fan, count: 0}]}]}]",
            "site.yaml: factories[0].lines[0].machines[0].count: must be at least 1 (got 0)",
        ),
        (
            "factories: [{name: F, timezone: Mars/Base, lines: [{name: L, machines: "
            "[{type: fan, count: 1}]}]}]",
            "site.yaml: factories[0].timezone: must be an IANA time zone such as "
            "'Europe/Berlin' (got 'Mars/Base')",
        ),
        (
            "factories: [{name: F, lines: []}]",
            "site.yaml: factories[0].lines: ",
        ),
        (
            "factories: [{lines: [{name: L, machines: [{type: fan, count: 1}]}]}]",
            "site.yaml: factories[0].name: is required",
        ),
        (
            "factories:\n - {name: Hall 1, lines: [{name: L, machines: [{type: fan, count: 1}]}]}"
            "\n - {name: hall-1, lines: [{name: L, machines: [{type: fan, count: 1}]}]}",
            "site.yaml: factories[1].name: 'hall-1' gives the same sensor ids as factories[0]; "
            "expected names that differ in letters or digits",
        ),
        (
            "factories: [{name: F, lines: [{name: L, machines: [{type: fan, count: 60000}, "
            "{type: hvac, count: 60000}]}]}]",
            "site.yaml: factories: 120000 machines in all; expected at most 100000",
        ),
        ("", "site.yaml: (top level): file is empty; expected a YAML mapping"),
    ],
)
def test_each_mistake_is_one_line_naming_the_file_and_the_key(text: str, problem: str) -> None:
    """Every problem of a site file is reported as 'file: key: what was expected'."""
    with pytest.raises(InputError) as caught:
        parse_site("site.yaml", text, KNOWN)
    assert any(line.startswith(problem) for line in caught.value.problems)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, timeout=300)  # a node run and a report, not only a listing


def test_cli_site_error_exits_2_with_one_line(tmp_path: Path) -> None:
    """``identities --site`` with a bad file exits 2, one line a problem, and writes nothing."""
    (tmp_path / "site.yaml").write_text("factories: [{name: F, lines: [{name: L, machine: []}]}]")
    result = _cli("identities", "--site", "site.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: site.yaml: factories[0].lines[0].machines: is required",
        "error: site.yaml: factories[0].lines[0].machine: unknown key (did you mean 'machines'?)",
    ]
    assert not (tmp_path / "identities").exists()


def test_a_site_fleet_runs_and_its_rows_group_by_line(tmp_path: Path) -> None:
    """The example site's machines run in one node; their rows carry their line's location,
    and the report breaks machine fault onsets down by those lines."""
    result = _cli("identities", "--site", str(ROOT / "fleet/site.yaml"), "-o", "ids", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = site_identities(load_site(str(ROOT / "fleet/site.yaml"), KNOWN))
    assert [load_identity(str(tmp_path / p)) for p in result.stdout.split()] == [
        i.identity for i in expected
    ]
    run = _cli(
        "run",
        "--identity",
        "ids",
        "--backfill",
        "10m",
        "--seed",
        "1",
        "--db",
        "site.db",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(tmp_path / "site.db") as db:
        for item in expected:
            table = f"{item.identity.type}_readings"
            (location,) = db.execute(
                f"SELECT DISTINCT location FROM {table} WHERE sensor_id = ?",
                (item.identity.id,),
            ).fetchone()
            assert location == item.identity.location
    report = _cli("report", "site.db", "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    onsets = json.loads(report.stdout)["equipment"]["fault_onsets"]
    by_location = {r["group"]: r["sensors"] for r in onsets if r["dimension"] == "location"}
    assert by_location == Counter(item.identity.location for item in expected)
