"""The node as a library: run_node and NodeInputs in-process, on real files."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config, write_identity
from polling import wait_until

from sensorfleet.errors import InputError
from sensorfleet.node.clock import ManualClock, Wake
from sensorfleet.node.inputs import NodeInputs
from sensorfleet.node.loop import NodeLoop
from sensorfleet.run import RunPlan, RunResult, check, run_node

START = 1_700_000_000.0


def rows(path: Path, where: str = "1") -> int:
    with sqlite3.connect(path) as conn:
        query = f"SELECT COUNT(*) FROM sensor_readings WHERE {where}"
        return int(conn.execute(query).fetchone()[0])


def inputs_for(tmp_path: Path, **sections: dict[str, object]) -> NodeInputs:
    simulation = {"seed": 7, "readings_per_second": 1.0, **sections.pop("simulation", {})}
    database = {"path": str(tmp_path / "node.db"), **sections.pop("database", {})}
    config = write_config(
        tmp_path / "config.yaml",
        database=database,
        simulation=simulation,
        **sections,
    )
    identity = write_identity(tmp_path / "node_identity.json", id="LIB-1")
    return NodeInputs.locate(str(config), [str(identity)], environ={})


def test_a_live_hour_on_the_manual_clock_runs_in_process(tmp_path: Path) -> None:
    """A one-hour live run on simulated time: every reading written, no real hour waited."""
    inputs = inputs_for(tmp_path, simulation={"run_time_seconds": 3600})
    result = run_node(inputs, clock=ManualClock(START), configure_logging=False)
    assert result.ok and result.error is None and result.stop_signal is None
    assert result.seed == 7
    assert result.summary.rows_written == 3600 == rows(tmp_path / "node.db")
    assert result.summary.rows_by_sensor == {"LIB-1": 3600}
    first, last = (
        sqlite3.connect(tmp_path / "node.db")
        .execute("SELECT MIN(timestamp), MAX(timestamp) FROM sensor_readings")
        .fetchone()
    )
    # START in UTC, and an hour of readings one second apart (simulated, not waited for).
    assert first.startswith("2023-11-14T22:13:20") and last.startswith("2023-11-14T23:13:19")


def test_history_then_live_on_the_manual_clock(tmp_path: Path) -> None:
    """--backfill 1h --follow with a 10-minute run time: 3600 + 600 readings, one schedule."""
    inputs = inputs_for(tmp_path, simulation={"run_time_seconds": 600})
    plan = RunPlan(backfill_seconds=3600, follow=True)
    result = run_node(inputs, plan, clock=ManualClock(START), configure_logging=False)
    assert result.ok
    assert rows(tmp_path / "node.db") == 4200


def test_the_same_seed_gives_the_same_rows_in_process(tmp_path: Path) -> None:
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        run_node(
            inputs_for(folder),
            RunPlan(backfill_seconds=600, start=START),
            configure_logging=False,
        )
    query = "SELECT timestamp, temperature, vibration, voltage, anomaly_type FROM sensor_readings"
    with (
        sqlite3.connect(tmp_path / "a" / "node.db") as a,
        sqlite3.connect(tmp_path / "b" / "node.db") as b,
    ):
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def run_while(inputs: NodeInputs, act: Callable[[NodeLoop], None]) -> RunResult:
    """Runs a live node while ``act`` works on its loop from another thread, then stops it."""
    loops: list[NodeLoop] = []

    def act_then_stop() -> None:
        wait_until(lambda: loops, what="the node to start")
        try:
            act(loops[0])
        finally:
            loops[0].stop()

    worker = threading.Thread(target=act_then_stop)
    worker.start()
    result = run_node(inputs, started=loops.append, configure_logging=False)
    worker.join()
    return result


def wait_for_firmware(
    loop: NodeLoop, version: str, then_rows: int, what: str, timeout: float = 20.0
) -> None:
    """Wait until the node's first sensor runs ``version``, then for ``then_rows`` more
    rows written under it."""
    wait_until(
        lambda: loop.sensor_views()[0].identity.firmware_version == version,
        timeout=timeout,
        what=what,
    )
    written = loop.summary().rows_written
    wait_until(lambda: loop.summary().rows_written >= written + then_rows, what="rows after it")


def test_an_embedding_program_stops_the_node_from_another_thread(tmp_path: Path) -> None:
    """Live on the real clock with no end: ``started`` hands over the loop, stop() ends it."""
    inputs = inputs_for(tmp_path, simulation={"readings_per_second": 50.0, "run_time_seconds": 0})
    loops: list[NodeLoop] = []

    def stop_after_some_rows() -> None:
        wait_until(lambda: loops, what="the node to start")
        wait_until(lambda: loops[0].summary().rows_written >= 20, what="20 rows written")
        loops[0].stop()

    stopper = threading.Thread(target=stop_after_some_rows)
    stopper.start()
    result = run_node(inputs, started=loops.append, configure_logging=False)
    stopper.join()
    assert result.ok and result.stop_signal is None
    assert result.summary.rows_written == rows(tmp_path / "node.db") >= 20


def test_an_identity_edit_reloads_through_the_same_inputs(tmp_path: Path) -> None:
    """The watcher loads edits with the inputs the node started with: a firmware upgrade
    mid-run lands in the rows."""
    inputs = inputs_for(
        tmp_path,
        simulation={"readings_per_second": 20.0, "run_time_seconds": 0},
        config_reload={"enabled": True, "check_interval_seconds": 0.2},
    )

    def upgrade(loop: NodeLoop) -> None:
        wait_until(lambda: loop.summary().rows_written >= 5, what="first rows")
        write_identity(tmp_path / "node_identity.json", id="LIB-1", firmware_version="2.0")
        wait_for_firmware(loop, "2.0", then_rows=10, what="the firmware upgrade to apply")

    result = run_while(inputs, upgrade)
    assert result.ok
    assert rows(tmp_path / "node.db", "firmware_version = '1.4'") >= 5
    assert rows(tmp_path / "node.db", "firmware_version = '2.0'") >= 10


class _RowsAtFirstWait(ManualClock):
    """Simulated time that notes the rows in the node's file when the loop first waits."""

    def __init__(self, start: float, db: Path) -> None:
        super().__init__(start)
        self.db = db
        self.rows_at_first_wait: int | None = None

    def wait_until(self, instant: float, stop: Wake) -> bool:
        if self.rows_at_first_wait is None:
            self.rows_at_first_wait = rows(self.db)
        return super().wait_until(instant, stop)


def test_a_live_start_commits_its_first_reading_before_it_first_waits(tmp_path: Path) -> None:
    """The first row is in the file at once, not a flush interval later."""
    inputs = inputs_for(
        tmp_path, simulation={"run_time_seconds": 5}, database={"flush_interval_seconds": 2.0}
    )
    clock = _RowsAtFirstWait(START, tmp_path / "node.db")
    result = run_node(inputs, clock=clock, configure_logging=False)
    assert result.ok and result.summary.rows_written == 5
    assert clock.rows_at_first_wait == 1


def test_the_edges_start_once_the_first_row_is_committed(tmp_path: Path) -> None:
    """Watcher, HTTP monitor and retention start after the first row: no reading waits for
    them. ``started`` comes once they run, so the row is in the file by then."""
    inputs = inputs_for(
        tmp_path,
        simulation={"run_time_seconds": 3},
        config_reload={"enabled": True},
        monitoring={"enabled": True, "host": "127.0.0.1", "port": 0},
    )
    rows_when_started: list[int] = []
    result = run_node(
        inputs,
        clock=ManualClock(START),
        configure_logging=False,
        started=lambda loop: rows_when_started.append(rows(tmp_path / "node.db")),
    )
    assert result.ok and result.summary.rows_written == 3
    assert rows_when_started == [1]


def test_an_edit_made_while_the_node_starts_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An identity edit landing after the node read its files but before its watcher
    started (here: while the database opens) still reaches the rows."""
    inputs = inputs_for(
        tmp_path,
        simulation={"readings_per_second": 20.0, "run_time_seconds": 0},
        config_reload={"enabled": True, "check_interval_seconds": 60},
    )
    import sensorfleet.run

    build_sensors = sensorfleet.run.build_sensors

    def build_then_edit(*args: Any, **kwargs: Any) -> Any:
        sensors = build_sensors(*args, **kwargs)
        write_identity(tmp_path / "node_identity.json", id="LIB-1", firmware_version="2.0")
        return sensors

    monkeypatch.setattr(sensorfleet.run, "build_sensors", build_then_edit)

    def wait_for_the_upgrade(loop: NodeLoop) -> None:
        wait_for_firmware(
            loop, "2.0", then_rows=5, what="the edit made during start-up to apply", timeout=10
        )

    result = run_while(inputs, wait_for_the_upgrade)
    assert result.ok
    assert rows(tmp_path / "node.db", "firmware_version = '2.0'") >= 1


class _FailingClock(ManualClock):
    """Simulated time that breaks with an error nobody foresaw after some readings."""

    def __init__(self, start: float, waits: int) -> None:
        super().__init__(start)
        self.waits = waits

    def wait_until(self, instant: float, stop: Wake) -> bool:
        self.waits -= 1
        if self.waits < 0:
            raise RuntimeError("clock broke")
        return super().wait_until(instant, stop)


def test_an_unforeseen_error_still_flushes_every_generated_row(tmp_path: Path) -> None:
    """The error propagates, but the rows buffered when it struck are in the file."""
    # Flushing only every 100 rows leaves rows buffered when the clock breaks.
    inputs = inputs_for(tmp_path, database={"batch_size": 100, "flush_interval_seconds": 3600})
    with pytest.raises(RuntimeError, match="clock broke"):
        run_node(inputs, clock=_FailingClock(START, waits=250), configure_logging=False)
    # The reading at START, then one after each of the 250 waits the clock allowed; with
    # 100-row batches, 51 of them were still buffered when it broke.
    assert rows(tmp_path / "node.db") == 251


def test_every_problem_is_reported_before_anything_opens(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("simulation:\n  readings_per_second: -1\n")
    inputs = NodeInputs.locate(str(config), [str(tmp_path / "missing.json")], environ={})
    with pytest.raises(InputError) as caught:
        check(inputs, RunPlan(follow=True))
    problems = caught.value.problems
    assert any("readings_per_second" in p for p in problems)
    assert any("missing.json" in p and "not found" in p for p in problems)
    assert "--follow: only meaningful with --backfill" in problems
    assert not list(tmp_path.glob("*.db"))


def test_inputs_are_found_as_the_container_finds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$CONFIG_FILE, $IDENTITY_FILE naming a folder, and environment overrides."""
    config = write_config(tmp_path / "fleet.yaml", database={"path": str(tmp_path / "x.db")})
    folder = tmp_path / "ids"
    folder.mkdir()
    for name in ("b", "a"):
        write_identity(folder / f"{name}.json", id=name.upper())
    monkeypatch.chdir(tmp_path)  # no ./config.yaml or ./node_identity.json here
    environ = {
        "CONFIG_FILE": str(config),
        "IDENTITY_FILE": str(folder),
        "SIMULATION_SEED": "99",
        "SENSOR_LOCATION": "Hall 7",
    }
    inputs = NodeInputs.locate(environ=environ)
    assert inputs.files == [str(config), str(folder / "a.json"), str(folder / "b.json")]
    settings = inputs.load()
    assert settings.config.simulation.seed == 99
    assert [(path, i.id, i.location) for path, i in settings.identities] == [
        (str(folder / "a.json"), "A", "Hall 7"),
        (str(folder / "b.json"), "B", "Hall 7"),
    ]
    assert NodeInputs.locate(environ={}).files == []  # built-in defaults, nothing to watch
