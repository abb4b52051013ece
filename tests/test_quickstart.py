"""The README's quick start as a newcomer runs it: a fresh copy, one shell, commands as written."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, clean_env
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

README = ROOT / "README.md"
# Run by the checkout's .venv python: every installed distribution as name==version.
INSTALLED = """
import importlib.metadata as m, re
for d in m.distributions():
    print(re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() + "==" + d.version)
"""


def quick_start_blocks() -> list[str]:
    """The ``sh`` blocks of the README's "Quick start" section, in order."""
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def fresh_copy(destination: Path) -> Path:
    """The checkout's files as a clone has them (tracked and new, not ignored), no .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_the_quick_start_names_the_commands_it_runs() -> None:
    """The section holds the set-up-and-run line, the first-result lines and the test line."""
    blocks = quick_start_blocks()
    assert len(blocks) == 3
    assert blocks[0].startswith("scripts/setup.sh && ")
    assert "sensorfleet report" in blocks[1]
    assert blocks[2].strip() == "scripts/setup.sh --test && .venv/bin/python -m pytest"


def test_ci_runs_the_readme_test_command_on_a_new_venv() -> None:
    """.ci/run removes .venv, then runs the README's test command as written (and stops
    if it fails), so what CI passes is what a fresh machine runs."""
    command = quick_start_blocks()[2].strip()
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(command))
    assert "rm -rf .venv" in lines[:at]
    assert lines[at].endswith("|| exit 1")


@pytest.mark.slow
def test_a_newcomer_runs_the_quick_start_then_the_next_commands_in_one_shell(
    tmp_path: Path,
) -> None:
    """In one shell on a fresh copy, set-up + first run, then a week of history and its report."""
    first_run, first_result, _tests = quick_start_blocks()
    checkout = fresh_copy(tmp_path / "sensorfleet")
    script = f"set -e\n{first_run}\n{first_result}"
    env = clean_env()
    # A newcomer's shell has no virtualenv active and no checkout on the import path.
    for variable in ("VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(variable, None)
    env["PATH"] = ":".join(
        part for part in env["PATH"].split(":") if not part.startswith(str(ROOT))
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    with sqlite3.connect(checkout / "data/sensor_data.db") as db:
        (live_rows,) = db.execute("SELECT count(*) FROM sensor_readings").fetchone()
    assert 29 <= live_rows <= 31
    with sqlite3.connect(checkout / "data/week.db") as db:
        (week_rows, anomalies, types) = db.execute(
            "SELECT count(*), sum(anomaly_flag), count(DISTINCT anomaly_type) FROM sensor_readings"
        ).fetchone()
    assert week_rows == 7 * 24 * 3600
    assert anomalies > 0 and types >= 3
    # The report's first table has the node's firmware, checked against the config.
    firmware = json.loads((checkout / "node_identity.json").read_text())["firmware_version"]
    assert "Anomaly rate by firmware" in result.stdout
    assert re.search(rf"^{re.escape(firmware)}\s", result.stdout, flags=re.M)
    assert "agree with config.yaml" in result.stdout
    # What the set-up installed is the lock's runtime set, version for version.
    installed = subprocess.run(
        [str(checkout / ".venv/bin/python"), "-c", INSTALLED],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = dict(line.split("==") for line in installed.split())
    for line in subprocess.run(
        ["python3", "docker/requirements.py", "uv.lock"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines():
        requirement = Requirement(line.split(" --hash=")[0])
        if requirement.marker is None or requirement.marker.evaluate():
            (pin,) = requirement.specifier
            assert versions.get(canonicalize_name(requirement.name)) == pin.version, line[:60]
