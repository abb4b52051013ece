"""The bad-input corpus: each case in tests/bad_inputs/ runs through the real CLI.

A case is a folder holding the input files and ``expect.yaml``::

    args: [run, --config, config.yaml]   # after `python -m sensorfleet`
    status: 2                            # exit status
    stderr: "config.yaml: simulation"    # a fragment stderr must contain
    env: {LOG_FILE: ""}                  # optional environment
    fifo: [config.yaml]                  # optional: named pipes to create
    sqlite: {data.db: setup.sql}         # optional: databases built from SQL
    absent: [data/sensor_simulator.log]  # optional: files that must not exist afterwards
    seconds: 10                          # optional: a hang is a failure after this long

Adding a case is adding a folder; no code changes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, clean_env

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.yaml").is_file())
# Quiet and self-contained: no log file, no HTTP port, no watcher unless a case asks.
BASE_ENV = {"LOG_FILE": "null", "MONITORING_ENABLED": "false", "CONFIG_RELOAD_ENABLED": "false"}


def prepare(case: str, folder: Path) -> dict[str, Any]:
    """Copy the case into ``folder`` and create what cannot live in git; return expect.yaml."""
    shutil.copytree(CORPUS / case, folder)
    expect: dict[str, Any] = yaml.safe_load((folder / "expect.yaml").read_text())
    for name in expect.get("fifo", []):
        os.mkfifo(folder / name)
    for name, script in expect.get("sqlite", {}).items():
        with closing(sqlite3.connect(folder / name)) as conn:
            conn.executescript((folder / script).read_text())
    return expect


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_its_answer(tmp_path: Path, case: str) -> None:
    """The CLI answers each corpus case with its exit status and message, never a traceback."""
    folder = tmp_path / case
    expect = prepare(case, folder)
    env = {**BASE_ENV, **{k: str(v) for k, v in expect.get("env", {}).items()}}
    result = subprocess.run(
        [sys.executable, "-m", "sensorfleet", *map(str, expect["args"])],
        cwd=folder,
        env={**clean_env(env), "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=expect.get("seconds", 60),
        check=False,
    )
    assert result.returncode == expect["status"], result.stderr[-3000:]
    assert expect["stderr"] in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for name in expect.get("absent", []):
        assert not (folder / name).exists(), name


def test_every_case_is_complete() -> None:
    """Each corpus folder has an expect.yaml with args, status and a stderr fragment."""
    folders = [p for p in CORPUS.iterdir() if p.is_dir()]
    assert len(folders) == len(CASES) >= 20
    for name in CASES:
        expect = yaml.safe_load((CORPUS / name / "expect.yaml").read_text())
        assert {"args", "status", "stderr"} <= set(expect), name
