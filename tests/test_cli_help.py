"""Help texts: every option of every command explains itself, and documented values are accepted."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, clean_env

from sensorfleet.cli import COMMANDS, build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("sensorfleet has no subcommands")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help(command: str) -> None:
    """Each option of `sensorfleet COMMAND --help` carries a help text."""
    sub = _subparsers(build_parser([command]))[command]
    silent = [
        action.option_strings[0]
        for action in sub._actions
        if action.option_strings and not action.help
    ]
    assert silent == []


def test_run_help_says_where_the_config_comes_from() -> None:
    """`run --help` says the config falls back to the built-in defaults."""
    sub = _subparsers(build_parser(["run"]))["run"]
    assert "built-in defaults" in " ".join(sub.format_help().split())


@pytest.mark.parametrize("command", ["run", "sync"])
def test_log_level_accepts_every_documented_level(command: str, tmp_path: Path) -> None:
    """CRITICAL, documented as a log level, is accepted on the command line (any case)."""
    db = tmp_path / "node.db"
    args = {
        "run": ["run", "--backfill", "10s", "--db", str(db), "--log-level", "critical"],
        "sync": [
            "sync",
            str(db),
            "--sink",
            f"sqlite:///{tmp_path / 'central.db'}",
            "--once",
            "--log-level",
            "CRITICAL",
        ],
    }
    if command == "sync":
        subprocess.run(
            [sys.executable, "-m", "sensorfleet", "run", "--backfill", "10s", "--db", str(db)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            check=True,
        )
    result = subprocess.run(
        [sys.executable, "-m", "sensorfleet", *args[command]],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # At CRITICAL nothing routine is logged.
    assert result.stderr == ""


def test_every_run_option_is_in_the_node_reference() -> None:
    """docs/node.md documents every option of `sensorfleet run --help`."""
    sub = _subparsers(build_parser(["run"]))["run"]
    options = {a.option_strings[-1] for a in sub._actions if a.option_strings} - {"--help"}
    text = (ROOT / "docs" / "node.md").read_text()
    assert sorted(o for o in options if f"`{o}" not in text) == []


@pytest.mark.parametrize("args", [["models"], ["models", "show", "compressor"]])
def test_a_reader_that_stops_reading_gets_no_traceback(args: list[str]) -> None:
    """`sensorfleet … | head -1` ends quietly with 141 when the reader closes the pipe early."""
    child = subprocess.Popen(
        [sys.executable, "-m", "sensorfleet", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line
    stderr = child.stderr.read().decode()
    status = child.wait(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert status in (0, 141), (status, stderr)
