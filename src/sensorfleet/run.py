"""Run a node: its core loop and its edges, from inputs to a run summary.

This is the one way a node runs, for the CLI, the tests and any program that
embeds one::

    from sensorfleet.node.inputs import NodeInputs
    from sensorfleet.run import RunPlan, run_node

    result = run_node(NodeInputs.locate("config.yaml", ["node_identity.json"]),
                      RunPlan(backfill_seconds=7 * 86400))
    print(result.summary.rows_written, result.ok)

``run_node`` loads and checks the inputs, opens the databases, starts the
edges the config asks for (HTTP monitor, file watcher, retention, OPC UA and
Modbus faces), runs the history and/or the live schedule, stops the edges,
flushes, and returns what the run did. It raises ``InputError`` (every
problem, one line each) before anything is opened, and ``SensorfleetError``
when a database cannot be opened. Give it a ``ManualClock`` and a live run
waits for nothing (it still flushes on its simulated schedule).
"""

from __future__ import annotations

import secrets
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from . import logs
from .errors import InputError, SensorfleetError
from .node.clock import Clock, SystemClock, check_span, format_instant
from .node.config import Config
from .node.inputs import NodeInputs, NodeSettings
from .node.loop import NodeLoop, Summary, build_sensors, run_summary_fields
from .node.retention import RetentionWorker

if TYPE_CHECKING:
    from .edges.watcher import ReloadStats

log = structlog.get_logger("sensorfleet.run")


@dataclass(frozen=True)
class RunPlan:
    """What to simulate: live from now, a stretch of history, or history then live.

    ``backfill_seconds`` of history end now, or start at ``start`` (epoch
    seconds) when given; ``follow`` continues live where the history ends.
    A live part lasts ``simulation.run_time_seconds`` (0: until stopped).
    """

    backfill_seconds: float | None = None
    start: float | None = None
    follow: bool = False
    # The run time was set for this run (``--run-time``), not taken from the config file:
    # with a one-off backfill it could never apply.
    run_time_set: bool = False

    @property
    def live(self) -> bool:
        return not self.backfill_seconds or self.follow

    def problems(self) -> list[str]:
        """Combinations that make no sense, named by the CLI flags that set them."""
        found = []
        if self.start is not None and not self.backfill_seconds:
            found.append("--start: only meaningful with --backfill")
        if self.follow and not self.backfill_seconds:
            found.append("--follow: only meaningful with --backfill")
        if self.backfill_seconds and self.run_time_set and not self.follow:
            found.append(
                "--run-time: conflicts with --backfill, which ends once its history is "
                "written; add --follow to run live for --run-time afterwards"
            )
        return found

    def span(self, config: Config, now: float) -> tuple[float, float]:
        """When the first reading falls and when the live part starts; refuses spans past
        year 9999."""
        backfill = self.backfill_seconds or 0.0
        first = (self.start if self.start is not None else now - backfill) if backfill else now
        end = first + backfill
        run_time = config.simulation.run_time_seconds
        if run_time and self.live:
            end += run_time
        what = "--backfill" if backfill else "run time"
        check_span(first, end, "--start/--backfill" if self.start is not None else what)
        return first, first + backfill


@dataclass(frozen=True)
class RunResult:
    """What a run did, and whether it ended as it should."""

    summary: Summary
    seed: int
    error: str | None = None  # why the node gave up, if it did
    stop_signal: str | None = None
    error_code: int = 1  # the exit status that error asks for

    @property
    def ok(self) -> bool:
        """No error, and every row generated was written or deliberately dropped."""
        return self.error is None and self.summary.rows_unwritten == 0

    @property
    def exit_status(self) -> int:
        """0 when ok; 2 when another node took over every sensor; 1 otherwise."""
        if self.error is not None:
            return self.error_code
        return 0 if self.ok else 1


def run_node(
    inputs: NodeInputs,
    plan: RunPlan = RunPlan(),
    *,
    clock: Clock | None = None,
    stop_on_signals: bool = False,
    configure_logging: bool = True,
    started: Callable[[NodeLoop], None] | None = None,
) -> RunResult:
    """Run one node to the end of its plan (or until stopped) and return what it did.

    ``stop_on_signals`` (main thread only) makes SIGTERM and SIGINT stop the
    node cleanly; ``started`` is called with the loop once everything runs, so
    an embedding program can keep it to call ``loop.stop()`` from elsewhere.
    """
    settings = check(inputs, plan)
    config = settings.config
    # The files as they were read: an edit before the watcher starts is still applied.
    baseline = inputs.digests(config)
    clock = clock or SystemClock()
    first, live_start = plan.span(config, clock.now())
    if configure_logging:
        _configure_logging(config, inputs)
    seed = config.simulation.seed if config.simulation.seed is not None else secrets.randbits(63)
    try:
        sensors = build_sensors(config, settings.identities, seed, first, settings.catalogue)
    except (sqlite3.Error, OSError) as exc:
        raise SensorfleetError(f"{config.database.path}: cannot open database: {exc}") from None
    loop = NodeLoop(config, sensors, clock, settings.catalogue)
    log.info(
        "node starting",
        sensors=len(sensors),
        seed=seed,
        config=inputs.config_path or "defaults",
        config_hash=config.digest(),
        database=config.database.path,
        readings_per_second=config.simulation.readings_per_second,
        sensor_id=sensors[0].identity.id if len(sensors) == 1 else None,
        mode="backfill" if plan.backfill_seconds else "live",
        start=format_instant(first),
    )
    error = None
    error_code = 1
    # The signal handlers stay until the files are closed: a second SIGTERM during the
    # final flush must not kill the node with the default handler.
    with _signals_stop(loop) if stop_on_signals else nullcontext():
        try:
            with ExitStack() as edges:  # the edges stop before the loop's files close
                try:

                    def start_edges() -> None:
                        _start_edges(loop, inputs, plan, edges, baseline)
                        if started is not None:
                            started(loop)

                    if plan.backfill_seconds:
                        start_edges()  # a long history is watched and served as it runs
                        loop.backfill(live_start)
                    if plan.live and not loop.stopping:
                        _start_faces(loop, settings, edges)
                        run_time = config.simulation.run_time_seconds
                        # A live start commits its first readings first: no reading
                        # waits for the watcher, the HTTP monitor or retention (their
                        # imports and threads), which start right after.
                        loop.live(
                            live_start + run_time if run_time else None,
                            None if plan.backfill_seconds else start_edges,
                        )
                except SensorfleetError as exc:
                    log.error("node giving up", error=str(exc))
                    error, error_code = str(exc), exc.exit_code
                finally:
                    if loop.stop_signal is not None:
                        log.info("stop requested", signal=loop.stop_signal)
        finally:
            # Whatever ended the run, even an error nobody foresaw, the buffered rows
            # are flushed and the files closed.
            summary = loop.close()
    log.info("run summary", **run_summary_fields(summary))
    return RunResult(summary, seed, error, loop.stop_signal, error_code)


def check(inputs: NodeInputs, plan: RunPlan = RunPlan()) -> NodeSettings:
    """Load the inputs and check they can run as planned; every problem in one
    ``InputError``, before any file is opened."""
    from .edges.faces import face_problems

    problems = plan.problems()
    try:
        settings = inputs.load()
    except InputError as exc:
        raise InputError([*exc.problems, *problems]) from None
    problems = [*face_problems(settings.config, len(settings.identities)), *problems]
    if problems:
        raise InputError(problems)
    return settings


def _configure_logging(config: Config, inputs: NodeInputs) -> None:
    settings = config.logging
    for problem in logs.configure(
        settings.level, settings.file, settings.console_output, settings.format
    ):
        log.warning("logging degraded", problem=problem)
    for warning in config.warnings():
        log.warning("config warning", problem=warning, config=inputs.config_path or "defaults")


def _start_edges(
    loop: NodeLoop,
    inputs: NodeInputs,
    plan: RunPlan,
    edges: ExitStack,
    baseline: Mapping[str, str | None],
) -> None:
    """The watcher (not for a one-off backfill, whose history has one setting; from the
    files' ``baseline``), the HTTP monitor and retention, each stopped when ``edges``
    closes."""
    config = loop.config
    reloads: ReloadStats | None = None
    if plan.live:
        from .edges.watcher import start_reloader

        reloader = start_reloader(loop, inputs, config.config_reload, baseline)
        if reloader is not None:
            edges.callback(reloader.stop)
            reloads = reloader.stats
    if config.monitoring.enabled:
        from .edges.monitor import start_monitor

        monitor = start_monitor(loop, reloads, config.monitoring.host, config.monitoring.port)
        if monitor is not None:
            edges.callback(monitor.stop)
    if RetentionWorker.wanted(config.database):
        # Deletes only rows a collector marked synced; its own connection and thread.
        retention = RetentionWorker(loop.database_paths(), config.database)
        retention.start()
        edges.callback(retention.stop)


def _start_faces(loop: NodeLoop, settings: NodeSettings, edges: ExitStack) -> None:
    """OPC UA / Modbus serve live readings only; each binds on its own thread."""
    from .edges.faces import start_faces

    identities = [identity for _, identity in settings.identities]
    models = [s.machine.settings.model if s.machine else None for s in loop.sensors]
    for face in start_faces(loop.config, identities, models):
        edges.callback(face.stop)
        loop.add_listener(face)


@contextmanager
def _signals_stop(loop: NodeLoop) -> Iterator[None]:
    """SIGTERM and SIGINT stop the loop while the node runs; the old handlers come back."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("stop_on_signals needs the main thread")

    def request_stop(signum: int, _frame: object) -> None:
        # Only a flag and a wake-up, no lock and no logging: the code the signal interrupted
        # may hold them. The loop flushes and closes in its own time and says why.
        loop.stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
