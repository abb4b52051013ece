"""The node loop: schedule readings, hand them to writers, stop cleanly.

One process may simulate one sensor or thousands; each keeps its own seeded
stream and schedule. The loop is the only place that wires generator and
store together. Other threads (file watcher, HTTP control) never touch its
state directly: they ``submit`` a command, which runs between two readings.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec
import structlog

from .._schema import StructT, field_names
from ..errors import InputError
from .clock import Clock, Wake
from .config import Config, Modbus, OpcUa, Override, Simulation
from .dbfile import unusable_reason
from .generator import EpisodeView, SensorGenerator, Settings
from .identity import Identity
from .layout import CLASSIC_TYPE, TableLayout
from .lease import FileLease, LeaseConflictError, LeaseLostError
from .readings import Readings
from .store import Store, backoff_after
from .writer import BufferedWriter

if TYPE_CHECKING:
    from ..equipment import Catalogue
    from .machine import EquipmentGenerator, MachineSettings, MachineView

log = structlog.get_logger("sensorfleet.node")

# With no reading or flush due, still wake this often so the health check (30 s
# stall limit) sees the loop alive at low rates. Commands, stop requests and
# reloads wake the loop at once, so a long pause costs no responsiveness and a
# node at 1 reading/s wakes once per reading.
HOUSEKEEPING_SECONDS = 10.0
EXIT_FLUSH_ATTEMPTS = 5

# Settings read only at start: a reload keeps their old values (and says so).
RESTART_KEYS: tuple[str, ...] = (
    "database.path",
    "database.journal_mode",
    "simulation.run_time_seconds",
    "simulation.seed",
    "logging.file",
    "logging.console_output",
    "logging.format",
    "monitoring.enabled",
    "monitoring.host",
    "monitoring.port",
    "labels.mode",  # the tables' columns are fixed when a node starts
    "labels.truth_path",
    *(f"opcua.{key}" for key in field_names(OpcUa)),
    *(f"modbus.{key}" for key in field_names(Modbus)),
)

Command = Callable[["NodeLoop"], None]


class ReadingListener(Protocol):
    """Something outside the core that serves the node's readings (an OPC UA server…).

    Both methods are called in the loop thread and must return at once: a
    listener hands the work to its own thread.
    """

    def publish(self, position: int, block: Readings) -> None:
        """Readings of the sensor at ``position`` (identity order), as they are written: a
        classic ``Block`` or an equipment model's ``machine.MachineBlock``."""

    def reconfigured(self, config: Config, identities: Sequence[Identity]) -> None:
        """New settings in force, with every sensor's identity in identity order."""


def database_path(template: str, sensor_id: str) -> Path:
    """The database file of a sensor: ``{sensor_id}`` in the template is replaced."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in sensor_id)
    return Path(template.replace("{sensor_id}", safe))


@dataclass
class Sensor:
    """One simulated sensor inside the process."""

    generator: SensorGenerator | EquipmentGenerator
    writer: BufferedWriter
    source: str | None = None  # identity file it came from, for reloads
    readings_generated: int = 0
    last_reading_at: float | None = None  # scheduled time of the newest reading

    @property
    def identity(self) -> Identity:
        return self.generator.settings.identity

    @property
    def classic(self) -> SensorGenerator | None:
        """The classic sensor's generator; None for an equipment model."""
        generator = self.generator
        return generator if isinstance(generator, SensorGenerator) else None

    @property
    def machine(self) -> EquipmentGenerator | None:
        """The equipment model's generator; None for a classic sensor."""
        generator = self.generator
        return None if isinstance(generator, SensorGenerator) else generator


@dataclass(frozen=True)
class SensorView:
    """One sensor as the edges see it: copied values, never the loop's live objects."""

    identity: Identity
    source: str | None
    readings_generated: int
    last_reading_at: float | None
    episode: EpisodeView | None  # classic sensors
    machine: MachineView | None = None  # equipment models: the latest reading and its truth


@dataclass(frozen=True)
class WriterStatus:
    """One database file's write state at a moment (for health and metrics)."""

    path: str
    buffered_rows: int
    consecutive_failures: int
    retries: int
    last_success: float | None
    last_error: str | None
    failing_since: float | None


@dataclass
class Summary:
    """What a run did, logged at the end and served by the status endpoint."""

    readings_generated: int
    rows_written: int
    rows_dropped: int
    rows_unwritten: int
    anomalies: dict[str, int]
    errors: dict[str, int]
    moved_aside: dict[str, int] = field(default_factory=dict)
    restores: int = 0  # files found behind their id floor: restored backups
    rows_by_sensor: dict[str, int] = field(default_factory=dict)
    writers: list[WriterStatus] = field(default_factory=list)
    last_reading_at: float | None = None

    @property
    def success_rate(self) -> float:
        expected = self.rows_written + self.rows_dropped + self.rows_unwritten
        return 1.0 if expected == 0 else self.rows_written / expected


class NodeLoop:
    """Drives every sensor of this process on a shared clock."""

    def __init__(
        self,
        config: Config,
        sensors: list[Sensor],
        clock: Clock,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.config = config
        self.catalogue = catalogue  # the equipment models in force (None: classic sensors only)
        self.sensors = sensors
        self.clock = clock
        self.writers = list({id(s.writer): s.writer for s in sensors}.values())
        self.started_at = clock.now()
        self.last_loop_at = self.started_at
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._wake = Wake()  # set from signal handlers too: see Wake
        self._stopping = False
        self.stop_signal: str | None = None  # the signal that asked the loop to stop
        self._schedule_dirty = True
        self._listeners: list[ReadingListener] = []
        self._positions = {id(sensor): i for i, sensor in enumerate(sensors)}

    def add_listener(self, listener: ReadingListener) -> None:
        """Hand every reading emitted from now on (and every reconfiguration) to ``listener``."""
        self._listeners.append(listener)

    # ---- control from other threads -------------------------------------------------
    def submit(self, command: Command) -> None:
        """Run ``command(loop)`` in the loop thread between two readings."""
        self._commands.put(command)
        self._wake.set()

    def stop(self, signal_name: str | None = None) -> None:
        """Ask the loop to finish: it flushes and returns (safe from signal handlers)."""
        if signal_name is not None:
            self.stop_signal = signal_name
        self._stopping = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def reschedule(self) -> None:
        """Recompute due times (after a reading rate changed)."""
        self._schedule_dirty = True

    # ---- reading from other threads ------------------------------------------------
    @property
    def sensor_count(self) -> int:
        return len(self.sensors)

    def sensor_ids(self) -> list[str]:
        return [sensor.identity.id for sensor in self.sensors]

    def sensor_views(self, limit: int | None = None) -> list[SensorView]:
        """The first ``limit`` sensors (all by default) as copies an edge may keep."""
        return [
            SensorView(
                identity=sensor.identity,
                source=sensor.source,
                readings_generated=sensor.readings_generated,
                last_reading_at=sensor.last_reading_at,
                episode=classic.episode_view() if (classic := sensor.classic) else None,
                machine=machine.view() if (machine := sensor.machine) else None,
            )
            for sensor in self.sensors[:limit]
        ]

    def database_paths(self) -> list[Path]:
        return [writer.store.path for writer in self.writers]

    # ---- control, in the loop thread (through ``submit``) ---------------------------
    def force_anomaly(
        self, kind: str, duration_seconds: float | None = None, sensor_id: str | None = None
    ) -> list[tuple[str, int]]:
        """Start an episode at the next reading of one sensor or all; return each sensor's
        id and episode length in readings (default length: the anomaly mix's)."""
        forced = []
        for sensor in self._chosen(sensor_id):
            generator = sensor.classic
            if generator is None:
                continue  # anomaly episodes are the classic sensor's; machines have faults
            length = None if duration_seconds is None else generator.readings_in(duration_seconds)
            forced.append((sensor.identity.id, generator.force_anomaly(kind, length)))
        return forced

    def end_anomaly(self, sensor_id: str | None = None) -> list[tuple[str, str]]:
        """End current and pending forced episodes; return (sensor id, type) of each ended."""
        ended = []
        for sensor in self._chosen(sensor_id):
            if sensor.classic is None:
                continue
            kind = sensor.classic.end_anomaly()
            if kind is not None:
                ended.append((sensor.identity.id, kind))
        return ended

    def machine_of(self, sensor_id: str) -> EquipmentGenerator:
        """The equipment generator of ``sensor_id``; ``KeyError`` if no machine has that id."""
        for sensor in self.sensors:
            if sensor.identity.id == sensor_id and sensor.machine is not None:
                return sensor.machine
        raise KeyError(sensor_id)

    def _chosen(self, sensor_id: str | None) -> list[Sensor]:
        return [s for s in self.sensors if sensor_id is None or s.identity.id == sensor_id]

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command(self)
            except Exception as exc:  # a bad command must not kill the node
                log.error("command failed", error=str(exc), error_class=type(exc).__name__)

    def reconfigure(
        self,
        config: Config,
        identities: dict[str, Identity],
        catalogue: Catalogue | None = None,
    ) -> list[str]:
        """Apply new settings from the next reading on; return what needs a restart.

        ``identities`` maps identity file paths to their new contents; sensors
        from other files keep theirs. Settings read only at start
        (``RESTART_KEYS``: database path, run time, seed, log destinations,
        monitoring address, ground-truth labels) keep their old values and are
        returned. A sensor's ``type`` is kept too (logged): a classic sensor cannot
        become a machine, nor one model another, without a restart.

        An identity whose id changes must first get the lease of its new id:
        ``LeaseConflictError`` (naming the holder) when a live node writes that
        id, and then nothing at all is applied.
        """
        self._claim_ids(identities)
        kept = [key for key in RESTART_KEYS if _get(config, key) != _get(self.config, key)]
        if kept:
            config = _with_values(config, [Override(k, _get(self.config, k), "") for k in kept])
        for sensor in self.sensors:
            identity = identities.get(sensor.source or "", sensor.identity)
            if (
                identity.id != sensor.identity.id
                and "{sensor_id}" in config.database.path
                and "database.path" not in kept
            ):
                kept.append("database.path")  # the file stays the one named after the old id
            if identity.type != sensor.identity.type:
                log.warning(
                    "setting needs restart",
                    key=f"{sensor.source}: type",
                    running=sensor.identity.type,
                    requested=identity.type,
                )
                identity = identity.with_changes(type=sensor.identity.type)
            settings = resolve_settings(config, identity, catalogue or self.catalogue)
            if settings.behaviour.unknown and identity != sensor.identity:
                log.warning(
                    "unknown profile, behaving neutrally",
                    sensor_id=identity.id,
                    unknown=", ".join(settings.behaviour.unknown),
                )
            sensor.generator.reconfigure(settings)  # type: ignore[arg-type]
        for writer in self.writers:
            writer.reconfigure(config.database)
        self.config = config
        self.catalogue = catalogue if catalogue is not None else self.catalogue
        self._schedule_dirty = True
        identities_now = [sensor.identity for sensor in self.sensors]
        for listener in self._listeners:
            listener.reconfigured(config, identities_now)
        return kept

    def _claim_ids(self, identities: dict[str, Identity]) -> None:
        """Lease the sensor ids an edit gives each file before any row is written under them."""
        wanted: dict[int, tuple[Store, list[str]]] = {}
        for sensor in self.sensors:
            store = sensor.writer.store
            new_id = identities.get(sensor.source or "", sensor.identity).id
            wanted.setdefault(id(store), (store, []))[1].append(new_id)
        claimed: list[tuple[Store, list[str]]] = []
        try:
            for store, ids in wanted.values():
                lease = store.lease
                if lease is None or sorted(set(ids)) == lease.sensor_ids:
                    continue
                previous = list(lease.sensor_ids)
                store.change_sensor_ids(ids)
                claimed.append((store, previous))
        except LeaseConflictError:
            for store, previous in reversed(claimed):  # all files or none
                with contextlib.suppress(LeaseConflictError):
                    store.change_sensor_ids(previous)
            raise

    # ---- producing readings ---------------------------------------------------------
    def _emit(self, sensor: Sensor, count: int) -> None:
        block: Readings = sensor.generator.generate(count)
        sensor.readings_generated += count
        sensor.last_reading_at = float(block.times_us[-1]) / 1e6
        sensor.writer.add(block)
        for listener in self._listeners:
            listener.publish(self._positions[id(sensor)], block)

    def backfill(self, end_epoch: float) -> None:
        """Generate every reading scheduled before ``end_epoch`` as fast as possible."""
        for sensor in list(self.sensors):
            batch = sensor.writer.settings.batch_size
            generator = sensor.generator
            while not self._stopping and sensor in self.sensors:
                self._run_commands()
                self.last_loop_at = self.clock.now()
                remaining = generator.index_before(end_epoch) - generator.next_index
                if remaining <= 0:
                    break
                try:
                    self._emit(sensor, min(batch, remaining))
                    self._flush_until_written(sensor.writer)
                    self._heartbeat()
                except LeaseLostError as exc:
                    self._drop_lost(exc)
        log.info("backfill finished", readings=sum(s.readings_generated for s in self.sensors))

    def _flush_until_written(self, writer: BufferedWriter) -> None:
        # History has no deadline: wait out an outage instead of dropping rows.
        while not writer.flush(self.clock.now()) and not self._stopping:
            writer.raise_if_exhausted()
            self._run_commands()
            self.last_loop_at = self.clock.now()
            self._wake.clear()
            self.clock.wait_until(writer.next_deadline(self.clock.now()) or 0.0, self._wake)

    def live(
        self, end_epoch: float | None, first_pass_done: Callable[[], None] | None = None
    ) -> None:
        """Emit readings as their scheduled time arrives until ``end_epoch`` or stop.

        ``first_pass_done`` is called once, when every reading due at the start has been
        generated and handed to its file (committed, unless the file is failing): a
        node's start-up work that no reading waits for goes there.
        """
        heap: list[tuple[float, int]] = []
        stops: list[int | None] = []
        while not self._stopping:
            self._run_commands()
            now = self.clock.now()
            self.last_loop_at = now
            if self._schedule_dirty:
                heap = [
                    (s.generator.time_of(s.generator.next_index), i)
                    for i, s in enumerate(self.sensors)
                ]
                heapq.heapify(heap)
                # Each sensor's first reading at or after the end: fixed until the schedule
                # changes, so worked out here rather than for every reading.
                stops = [
                    None if end_epoch is None else s.generator.index_before(end_epoch)
                    for s in self.sensors
                ]
                self._schedule_dirty = False
            try:
                finished = self._emit_due(heap, stops, now, end_epoch)
                for writer in self.writers:
                    writer.maybe_flush(now)
                self._heartbeat()
            except LeaseLostError as exc:
                self._drop_lost(exc)  # raises when no sensor is left
                continue
            if first_pass_done is not None:
                first_pass_done()
                first_pass_done = None
            if finished:
                return
            self._sleep(heap, now)

    def _emit_due(
        self,
        heap: list[tuple[float, int]],
        stops: list[int | None],
        now: float,
        end: float | None,
    ) -> bool:
        """Emit readings due by ``now`` (each sensor's up to its ``stops`` entry); True when
        no sensor has readings left before ``end``."""
        while heap and heap[0][0] <= now:
            _, position = heapq.heappop(heap)
            sensor = self.sensors[position]
            generator = sensor.generator
            stop = stops[position]
            limit = generator.index_after(now)
            if stop is not None:
                limit = min(limit, stop)
            batch = sensor.writer.settings.batch_size
            while limit > generator.next_index:
                # Catching up after a stall can mean many readings at once: emit and
                # write them batch by batch, so the outage bound never drops rows that
                # a healthy database could take.
                self._emit(sensor, min(batch, limit - generator.next_index))
                sensor.writer.maybe_flush(now)
            if stop is None or generator.next_index < stop:
                heapq.heappush(heap, (generator.time_of(generator.next_index), position))
        return end is not None and not heap

    def _drop_lost(self, exc: LeaseLostError, closing: bool = False) -> None:
        """Stop writing sensor ids another node took over: their buffered rows are
        discarded (counted as dropped) and the sensors leave this process.

        Re-raises ``exc`` when no sensor is left (the node exits 2), unless ``closing``.
        """
        lost = set(exc.sensor_ids)
        discarded: Counter[str] = Counter()
        for writer in self.writers:
            discarded.update(writer.discard(lost))
            if writer.store.lease is not None:
                writer.store.lease.drop(lost)
        dropped = [s for s in self.sensors if s.identity.id in lost]
        self.sensors = [s for s in self.sensors if s.identity.id not in lost]
        self._schedule_dirty = True
        for sensor in dropped:
            log.error(
                "sensor dropped, lease taken over",
                sensor_id=sensor.identity.id,
                problem=next(
                    (p for p in exc.problems if repr(sensor.identity.id) in p), exc.problems[0]
                ),
                rows_discarded=discarded[sensor.identity.id],
                sensors_left=len(self.sensors),
            )
        if not self.sensors and not closing:
            raise exc

    def _heartbeat(self) -> None:
        # Files with nothing to flush still show their leases' holder is alive.
        for writer in self.writers:
            writer.store.heartbeat()

    def _sleep(self, heap: list[tuple[float, int]], now: float) -> None:
        deadlines = [now + HOUSEKEEPING_SECONDS]
        if heap:
            deadlines.append(heap[0][0])
        deadlines.extend(d for w in self.writers if (d := w.next_deadline(now)) is not None)
        # Wake for lease heartbeats too, or an idle node would look dead to its peers.
        # They are due in wall time; the loop's clock may be a simulated one.
        wall = time.time()
        deadlines.extend(
            now + max(0.0, due - wall)
            for w in self.writers
            if (due := w.store.heartbeat_due_at()) is not None
        )
        self._wake.clear()
        if self._stopping:
            return
        self.clock.wait_until(max(now, min(deadlines)), self._wake)

    # ---- finishing ------------------------------------------------------------------
    def close(self) -> Summary:
        """Flush what is buffered (a few tries), close the files, return the summary."""
        for writer in self.writers:
            for attempt in range(EXIT_FLUSH_ATTEMPTS):
                try:
                    if writer.flush(self.clock.now()):
                        break
                except LeaseLostError as exc:
                    self._drop_lost(exc, closing=True)  # then flush the other sensors' rows
                    continue
                if attempt + 1 < EXIT_FLUSH_ATTEMPTS:
                    threading.Event().wait(backoff_after(attempt + 1, first=0.2, cap=2.0))
            if writer.pending_rows:
                log.error(
                    "rows not written at exit",
                    rows=writer.pending_rows,
                    path=str(writer.store.path),
                    error=writer.stats.last_error,
                )
            writer.store.finish()
        return self.summary()

    def summary(self) -> Summary:
        """Counters of the run so far; safe to call from another thread.

        Counters are copied with ``dict()`` first: a plain dict copy holds the
        GIL throughout, so the loop thread cannot change them mid-copy.
        """
        anomalies: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        moved: Counter[str] = Counter()
        by_sensor: Counter[str] = Counter()
        statuses = []
        for writer in self.writers:
            stats = writer.stats
            anomalies.update(dict(stats.anomalies_written))
            errors.update(dict(stats.errors))
            moved.update(dict(writer.store.moved_aside))
            by_sensor.update(dict(stats.rows_by_sensor))
            statuses.append(
                WriterStatus(
                    path=str(writer.store.path),
                    buffered_rows=writer.pending_rows,
                    consecutive_failures=stats.consecutive_failures,
                    retries=stats.retries + writer.store.retries,
                    last_success=stats.last_success,
                    last_error=stats.last_error,
                    failing_since=stats.failing_since,
                )
            )
        times = [s.last_reading_at for s in self.sensors if s.last_reading_at is not None]
        return Summary(
            readings_generated=sum(s.readings_generated for s in self.sensors),
            rows_written=sum(w.stats.rows_written for w in self.writers),
            rows_dropped=sum(w.stats.rows_dropped for w in self.writers),
            rows_unwritten=sum(w.pending_rows for w in self.writers),
            anomalies=dict(anomalies),
            errors=dict(errors),
            moved_aside=dict(moved),
            restores=sum(w.store.restores for w in self.writers),
            rows_by_sensor=dict(by_sensor),
            writers=statuses,
            last_reading_at=max(times) if times else None,
        )


def _get(config: Config, dotted: str) -> object:
    node: object = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _with_values(config: Config, values: list[Override]) -> Config:
    """A copy of ``config`` with some dotted keys set (values already validated)."""
    for item in values:
        config = _replaced(config, item.key.split("."), item.value)
    return config


def _replaced(section: StructT, keys: list[str], value: object) -> StructT:
    first, *rest = keys
    new = _replaced(getattr(section, first), rest, value) if rest else value
    changes: dict[str, object] = {first: new}
    if isinstance(section, Simulation) and first == "readings_per_second":
        changes["rate_given"] = True
    return msgspec.structs.replace(section, **changes)


# Descriptors one open database holds: the file, plus -wal and -shm in WAL mode.
_FILES_PER_DATABASE = {"wal": 3}
_SPARE_DESCRIPTORS = 64


def ensure_file_budget(databases: int, journal_mode: str) -> None:
    """Raise the open-file limit as far as allowed, or explain why it is too low.

    Fails before any file is opened, so a fleet too large for one process is
    refused in a second rather than after minutes of opening databases.
    """
    needed = databases * _FILES_PER_DATABASE.get(journal_mode, 2) + _SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise InputError(
            [
                f"database.path: {databases} database files need about {needed} open files but "
                f"this process may open {soft}; raise the limit (ulimit -n), use one shared "
                "database (a path without {sensor_id}), or split the identities over processes"
            ]
        )


def resolve_settings(
    config: Config, identity: Identity, catalogue: Catalogue | None
) -> Settings | MachineSettings:
    """A classic sensor's settings, or an equipment model's from ``catalogue``."""
    if identity.type == CLASSIC_TYPE:
        return Settings.resolve(config, identity)
    from .machine import MachineSettings

    if catalogue is None:
        raise InputError([f"sensor {identity.id}: type {identity.type!r} needs the catalogue"])
    return MachineSettings.resolve(config, identity, catalogue)


def truth_path(config: Config, database: Path, sensor_id: str) -> Path | None:
    """The ground-truth file of a database (hidden labels only): ``labels.truth_path``
    (``{sensor_id}`` replaced), else NAME.truth.db beside the database file."""
    labels = config.labels
    if labels.mode != "hidden":
        return None
    if labels.truth_path is not None:
        return database_path(labels.truth_path, sensor_id)
    return database.with_suffix(".truth.db")


def refuse_unusable_paths(paths: Iterable[Path]) -> None:
    """Raise ``InputError`` for paths that can never hold a database (a device, a folder,
    a read-only place): one line each (once per folder), before any file is opened,
    instead of retrying them as if the database were only busy."""
    problems = [f"database.path: {reason}" for path in paths if (reason := unusable_reason(path))]
    if problems:
        raise InputError(list(dict.fromkeys(problems)))


def build_sensors(
    config: Config,
    identities: Iterable[tuple[str | None, Identity]],
    seed: int,
    start_epoch: float,
    catalogue: Catalogue | None = None,
) -> list[Sensor]:
    """Open one writer per database file and one generator per identity."""
    writers: dict[Path, BufferedWriter] = {}
    sensors: list[Sensor] = []
    # Each identity's file, worked out once: with one file per sensor, looking every
    # identity's up again for each file opened was quadratic (4 million paths for 2,000).
    placed = [
        (source, identity, database_path(config.database.path, identity.id))
        for source, identity in identities
    ]
    ids_by_path: dict[Path, list[str]] = {}
    for _, identity, path in placed:
        ids_by_path.setdefault(path, []).append(identity.id)
    refuse_unusable_paths(ids_by_path)
    ensure_file_budget(len(ids_by_path), config.database.journal_mode)
    resolved = [
        (source, identity, resolve_settings(config, identity, catalogue), path)
        for source, identity, path in placed
    ]
    layouts_by_path: dict[Path, list[TableLayout]] = {}
    for _, _, settings, path in resolved:
        layouts_by_path.setdefault(path, []).append(settings.layout)
    for source, identity, settings, path in resolved:
        writer = writers.get(path)
        if writer is None:
            store = Store(path, config.database, truth_path(config, path, identity.id))
            store.lease = FileLease(path, ids_by_path[path])
            for layout in layouts_by_path[path]:
                store.add_layout(layout)  # every table, checked at open
            try:
                store.open()
            except BaseException:
                for opened in writers.values():
                    opened.store.finish()
                raise
            writer = writers[path] = BufferedWriter(store, config.database)
        if settings.behaviour.unknown:
            log.warning(
                "unknown profile, behaving neutrally",
                sensor_id=identity.id,
                unknown=", ".join(settings.behaviour.unknown),
            )
        generator: SensorGenerator | EquipmentGenerator
        if isinstance(settings, Settings):
            generator = SensorGenerator(settings, seed, start_epoch)
        else:
            from .machine import EquipmentGenerator

            generator = EquipmentGenerator(settings, seed, start_epoch)
        # Neighbours read ahead on different ticks: 25,000 sensors that all produced their
        # 10 s look-ahead in the same tick held that tick's rows back by seconds.
        generator.stagger = len(sensors)
        sensors.append(Sensor(generator, writer, source))
    return sensors


def run_summary_fields(summary: Summary) -> dict[str, object]:
    """Key/value fields of the final ``run summary`` log event."""
    return {
        "readings_generated": summary.readings_generated,
        "rows_written": summary.rows_written,
        "rows_dropped": summary.rows_dropped,
        "rows_unwritten": summary.rows_unwritten,
        "anomalies": summary.anomalies,
        "errors": summary.errors,
        "moved_aside": summary.moved_aside,
        "success_rate": round(summary.success_rate, 6),
        "rows_by_sensor": summary.rows_by_sensor if len(summary.rows_by_sensor) <= 50 else None,
    }
