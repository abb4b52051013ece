"""Shared fixtures: real files in tmp_path and the CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.py"

# The built-in equipment catalogue's model names, as `sensorfleet models` lists them.
BUILT_IN_MODELS: tuple[str, ...] = (
    "compressor",
    "fan",
    "heater",
    "hvac",
    "hydraulic_pump",
    "injection_molding",
    "lamp",
    "motor",
    "oven",
    "pm_sensor",
    "process_machine",
    "production_machine",
)


def write_config(path: Path, **sections: Any) -> Path:
    """Write a config.yaml with the given top-level sections (logging quiet by default)."""
    data: dict[str, Any] = {
        "logging": {"file": None, "format": "json", "level": "INFO"},
        "monitoring": {"enabled": False},
        "config_reload": {"enabled": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_identity(path: Path, **fields: Any) -> Path:
    data = {
        "id": "T1",
        "type": "temperature_vibration",
        "location": "Lab",
        "manufacturer": "SensorTech",
        "model": "TempVibe-2000",
        "firmware_version": "1.4",
    }
    data.update(fields)
    path.write_text(json.dumps(data))
    return path


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process environment without any sensorfleet overrides."""
    from sensorfleet.node.config import ENVIRONMENT_KEYS
    from sensorfleet.node.identity import ENVIRONMENT_FIELDS

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ENVIRONMENT_KEYS
        and k not in ENVIRONMENT_FIELDS
        and k not in ("CONFIG_FILE", "IDENTITY_FILE")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sensorfleet ARGS`` from the source tree, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", *args],
        cwd=cwd,
        env=clean_env({"PYTHONPATH": str(ROOT / "src")}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_main(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python main.py ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, str(MAIN), *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def log_events(stderr: str, event: str) -> list[dict[str, Any]]:
    """JSON log lines of one event from a node's stderr."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def node_files(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Factory writing a config and an identity into tmp_path."""

    def make(config: dict[str, Any] | None = None, **identity: Any) -> tuple[Path, Path]:
        return (
            write_config(tmp_path / "config.yaml", **(config or {})),
            write_identity(tmp_path / "node_identity.json", **identity),
        )

    return make
