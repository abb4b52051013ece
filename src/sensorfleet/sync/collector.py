"""The collector loop: find node databases, ship their rows batch by batch, mark them.

Per source and batch: read (no transaction left open) → sink write, wait for
the acknowledgement → mark those ids (or advance the cursor). A sink failure
stops the pass and backs off for every source, with nothing marked; a source
failure backs off that source only. Signal handlers only call ``stop()``: the
batch in flight finishes, then the loop returns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from ..errors import SensorfleetError
from ..node.clock import Clock, MonotonicClock, SystemClock, Wake, format_instant
from ..node.config import Database
from ..node.layout import CLASSIC
from ..node.store import backoff_after
from .cursor import CursorStore
from .features import Features
from .metrics import SyncMetrics
from .sinks.base import Batch, Sink, SinkClosedError, SinkError, SinkInterruptedError
from .source import NodeDatabase, NotNodeDatabaseError, SourceError

log = structlog.get_logger("sensorfleet.sync")

# Files in a source folder that are taken for node databases.
DATABASE_PATTERNS = ("*.db", "*.sqlite", "*.sqlite3")


@dataclass(frozen=True)
class SyncOptions:
    """How the collector runs (the ``sync`` command's flags)."""

    batch_size: int = 5000
    interval: float = 5.0
    once: bool = False
    log_interval: float = 10.0
    # With --once: consecutive failures of the sink or of one source before giving up.
    max_failures: int = 5
    # How long one source may keep the loop before the others get a turn.
    slice_seconds: float = 1.0
    # Following: how often to look at each file's WAL for new commits (0 = poll only).
    watch_interval: float = 0.05
    database: Database = field(default_factory=Database)
    # Derived features added to stream records (features.SETS); none by default.
    features: frozenset[str] = frozenset()


@dataclass
class _State:
    source: NodeDatabase
    explicit: bool
    key: str = ""  # the file's real path, and ``#<table>`` for an equipment table
    until: int | None = None
    until_database: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    done: bool = False
    gave_up: bool = False
    skipped: bool = False
    shipped: int = 0
    # Following: when this source was last read, and whether it had more rows then.
    polled_at: float = float("-inf")
    pending: bool = False
    since_log: int = 0


@dataclass
class SyncSummary:
    """What one ``run`` did, for the closing log line and the exit status."""

    rows_shipped: int = 0
    rows_stored: int | None = 0
    # Readings whose key already held a different reading (kept beside it by the sink).
    conflicts: int = 0
    batches: int = 0
    sink_errors: int = 0
    source_errors: int = 0
    failed_sources: list[str] = field(default_factory=list)
    seconds: float = 0.0


# A batch the sink acknowledged but not marked yet: (batch, rows stored, clock at submit).
_Acked = tuple[Batch, int | None, float]


class _SinkDownError(Exception):
    """Raised inside a pass to stop it after a sink failure (already recorded)."""


def _key(path: Path) -> str:
    return os.path.realpath(path)


def _file_key(key: str) -> str:
    """The file part of a source key (equipment tables are ``<file>#<table>``)."""
    return key.split("#", 1)[0]


def _cursor_key(state: _State, database_id: str) -> str:
    """Where ``--cursor`` keeps a table's high-water mark: the database id for classic
    readings (as before equipment tables existed), ``<database id>#<table>`` otherwise."""
    table = state.source.layout.table
    return database_id if table == CLASSIC.table else f"{database_id}#{table}"


class Collector:
    """Ships rows from node databases to one sink until stopped (or drained, with ``once``)."""

    def __init__(
        self,
        inputs: Sequence[Path],
        sink: Sink,
        options: SyncOptions,
        cursor: CursorStore | None = None,
        metrics: SyncMetrics | None = None,
        exclude: Iterable[Path] = (),
        clock: Clock | None = None,
        monotonic: Clock | None = None,
    ) -> None:
        self.inputs = list(inputs)
        self.sink = sink
        self.options = options
        self.cursor = cursor
        self.metrics = metrics or SyncMetrics()
        self._exclude = {_key(p) for p in exclude}
        # Injected so tests run backoffs and waits on ManualClocks, without sleeping.
        self._clock = clock or SystemClock()  # wall time: dates batches and successes
        self._monotonic = monotonic or MonotonicClock()  # intervals, backoffs and waits
        self._stop = Wake()  # set from signal handlers too: see Wake
        self._states: dict[str, _State] = {}
        self._sink_failures = 0
        self._sink_retry_at = 0.0
        self._last_log = self._monotonic.now()
        self.closed_by_sink = False
        # A sink that copies rows from the node file itself (SQLite) needs only their ids.
        self._ids_only = bool(getattr(sink, "copies_rows", False))
        # A sink that may wait on its destination for good (a pipe nobody reads) can be
        # told to stop waiting; stop() tells it.
        self._interrupt_sink: Callable[[], None] | None = getattr(sink, "interrupt", None)
        # Each source's file fingerprint when its last pass found nothing more to read.
        self._seen: dict[str, tuple[int, ...]] = {}
        # Sink writes run here so the next batch is read while the sink stores this one.
        self._sink_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink")
        self.summary = SyncSummary()
        self._features = Features(options.features) if options.features else None

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight and return (safe from a signal handler).

        A sink that can wait on its destination for good gets a short grace to finish
        the batch, then ends it; only the rows that arrived are marked.
        """
        self._stop.set()
        if self._interrupt_sink is not None:
            self._interrupt_sink()

    @property
    def sources(self) -> list[Path]:
        """The node databases followed now (safe to read from another thread)."""
        return [state.source.path for state in list(self._states.values())]

    # -- discovery ---------------------------------------------------------

    def scan(self) -> None:
        """Pick up new files in source folders; forget folder files that are gone."""
        seen: set[str] = set()
        for item in self.inputs:
            if item.is_dir():
                found = sorted({p for pattern in DATABASE_PATTERNS for p in item.glob(pattern)})
                for path in found:
                    self._add(path, explicit=False, seen=seen)
            else:
                self._add(item, explicit=True, seen=seen)
        gone = [
            key
            for key, state in self._states.items()
            if _file_key(key) not in seen and not state.explicit
        ]
        for key in gone:
            state = self._states.pop(key)
            state.source.close()
            with contextlib.suppress(KeyError):  # never reported a backlog
                self.metrics.backlog.remove(str(state.source.path))
            log.info("source gone", source=str(state.source.path), shipped=state.shipped)
        self.metrics.sources.set(len(self._states))

    def _add(self, path: Path, explicit: bool, seen: set[str]) -> None:
        key = _key(path)
        if key in self._exclude or key in seen:
            return
        seen.add(key)
        if key not in self._states:
            source = NodeDatabase(path, self.options.database, read_only=self.cursor is not None)
            self._states[key] = _State(source, explicit, key)
            log.info("source added", source=str(path))

    def _discover(self, state: _State) -> None:
        """Follow each equipment table of a file whose ``sensor_readings`` was just opened,
        with a cursor of its own (a table whose layout grew is followed in its new one)."""
        for layout in state.source.equipment_layouts():
            key = f"{state.key}#{layout.table}"
            known = self._states.get(key)
            if known is not None and known.source.layout == layout:
                continue
            source = NodeDatabase(
                state.source.path, self.options.database, self.cursor is not None, layout
            )
            if known is not None:
                known.source.close()
                known.source = source
                continue
            self._states[key] = _State(source, state.explicit, key)
            log.info("source added", source=str(source.path), table=layout.table)

    # -- batches ---------------------------------------------------------------

    def _read(self, state: _State, database_id: str, after: int) -> Batch | None:
        """The next batch of a source above ``after`` (rows of a batch still in flight)."""
        source, size = state.source, self.options.batch_size
        ids_only = self._ids_only
        if self.cursor is not None:
            after = max(after, self.cursor.get(_cursor_key(state, database_id)))
            rows = source.read_after(after, size, state.until, ids_only)
        else:
            rows = source.read_unsynced(size, after, state.until, ids_only)
        if not rows:
            return None
        received = format_instant(self._clock.now())
        batch = Batch(database_id, str(source.path), rows, received, source.layout)
        if self._features is not None:
            batch = replace(batch, extras=self._features.annotate(batch))
        return batch

    def _wait_for_ack(
        self, future: Future[int | None], state: _State, batch: Batch, since: float
    ) -> int | None:
        try:
            return future.result()
        except SinkInterruptedError as exc:
            # Told to stop while the destination took nothing more: keep what it took.
            log.info("sink write stopped", sink=self.sink.name, reason=str(exc), rows=exc.written)
            if exc.written:
                self._acknowledged(state, batch.head(exc.written), None, since)
            raise _SinkDownError from None
        except SinkClosedError as exc:
            # The reader went away for good: keep what it did take, then stop cleanly.
            log.info("sink closed", sink=self.sink.name, reason=str(exc), rows=exc.written)
            self.closed_by_sink = True
            self._stop.set()
            if exc.written:
                self._acknowledged(state, batch.head(exc.written), None, since)
            raise _SinkDownError from None
        except SinkError as exc:
            self._sink_failed(exc)
            raise _SinkDownError from None

    def _acknowledged(self, state: _State, batch: Batch, stored: int | None, since: float) -> None:
        """The sink holds the batch: only now mark its ids (or advance the cursor)."""
        if self.cursor is not None:
            try:
                now = self._clock.now()
                key = _cursor_key(state, batch.database_id)
                self.cursor.advance(key, batch.last_id, batch.source, now)
            except OSError as exc:
                raise SourceError(f"save cursor {self.cursor.path}: {exc}") from None
        else:
            state.source.mark(batch.ids, batch.database_id)
        if self._features is not None:
            self._features.acknowledged(batch)
        self._sink_recovered()
        self._count(state, len(batch), stored, self._monotonic.now() - since)

    def _count(self, state: _State, rows: int, stored: int | None, seconds: float) -> None:
        summary, metrics = self.summary, self.metrics
        state.shipped += rows
        state.since_log += rows
        summary.rows_shipped += rows
        summary.batches += 1
        if stored is None or summary.rows_stored is None:
            summary.rows_stored = None
        else:
            summary.rows_stored += stored
            metrics.rows_stored.inc(stored)
        conflicts = int(getattr(self.sink, "conflicts", 0))  # sinks with storage count them
        if conflicts > summary.conflicts:
            metrics.key_conflicts.inc(conflicts - summary.conflicts)
            summary.conflicts = conflicts
        metrics.rows_shipped.labels(str(state.source.path)).inc(rows)
        metrics.batches.inc()
        metrics.batch_seconds.observe(seconds)
        metrics.last_success.set(self._clock.now())

    # -- one source ------------------------------------------------------------

    def _drain(self, state: _State) -> bool:
        """Ship batches from one source for up to a time slice; True if more are waiting.

        While the sink stores batch N on its own thread, this thread marks batch
        N-1 (acknowledged just before) and reads batch N+1 (ids above N's last
        id, since N is not marked yet). N is marked only once its write
        returned. At most one batch is ever in flight, and every way out of this
        method first marks the batch acknowledged last.
        """
        try:
            database_id = state.source.open()
        except NotNodeDatabaseError as exc:
            if state.explicit:
                self._source_failed(state, exc)
            else:
                self._skip(state, exc)
            return False
        except SourceError as exc:
            self._source_failed(state, exc)
            return False
        if state.source.layout is CLASSIC:
            self._discover(state)
        # Taken before reading: a commit after this point wakes the next pass.
        self._seen[state.key] = state.source.signature()
        deadline = self._monotonic.now() + self.options.slice_seconds
        size = self.options.batch_size
        try:
            if self.options.once and state.until_database != database_id:
                state.until, state.until_database = state.source.newest_id(), database_id
            if self.cursor is not None:
                self._rewind_if_rolled_back(state, database_id)
            batch = self._read(state, database_id, 0)
            acked: _Acked | None = None
            while batch is not None:
                since = self._monotonic.now()
                future = self._sink_thread.submit(self.sink.write, batch)
                full = len(batch) == size
                in_time = not self._stop.is_set() and self._monotonic.now() < deadline
                following: Batch | None = None
                problem: SourceError | None = None
                try:
                    self._settle(state, acked, None)
                    if full and in_time:
                        following = self._read(state, database_id, batch.last_id)
                except SourceError as exc:
                    problem = exc  # the batch in flight is still acknowledged and marked first
                acked = None
                stored = self._wait_for_ack(future, state, batch, since)
                acked = (batch, stored, since)
                if problem is not None or (full and not in_time):
                    self._settle(state, acked, problem)
                    self._source_recovered(state)
                    return True
                batch = following
            self._settle(state, acked, None)
        except SourceError as exc:
            self._source_failed(state, exc)
            return False
        state.done = self.options.once
        self._source_recovered(state)
        return False

    def _rewind_if_rolled_back(self, state: _State, database_id: str) -> None:
        """``--cursor``: a file whose newest id is below the mark was restored from a backup.

        The node continues above every id it handed out, but should its record of
        them be lost with the file, the ids between the file's newest and the mark
        will name new readings: read from the file's newest id on, so they are
        shipped (and a central store keeps both readings of such a key).
        """
        assert self.cursor is not None
        key = _cursor_key(state, database_id)
        mark, newest = self.cursor.get(key), state.source.newest_id()
        if newest >= mark:
            return
        log.warning(
            "source behind the cursor",
            source=str(state.source.path),
            database_id=database_id,
            table=state.source.layout.table,
            cursor_last_id=mark,
            file_last_id=newest,
            action=f"reading from id {newest} on: the file was rolled back (a restored backup?)",
        )
        try:
            self.cursor.rewind(key, newest, str(state.source.path), self._clock.now())
        except OSError as exc:
            raise SourceError(f"save cursor {self.cursor.path}: {exc}") from None

    def _settle(self, state: _State, acked: _Acked | None, error: SourceError | None) -> None:
        """Mark the acknowledged batch, then raise ``error`` (the first cause) if given."""
        if acked is not None:
            try:
                self._acknowledged(state, *acked)
            except SourceError as exc:
                if error is None:
                    raise
                raise SourceError(f"{error}; marking the shipped batch: {exc}") from None
        if error is not None:
            raise error

    def _skip(self, state: _State, exc: Exception) -> None:
        if not state.skipped:
            log.info("file skipped", source=str(state.source.path), reason=str(exc))
        state.skipped = True
        state.done = self.options.once
        state.retry_at = self._monotonic.now() + max(self.options.interval, 1.0)

    def _source_failed(self, state: _State, exc: Exception) -> None:
        state.failures += 1
        self.summary.source_errors += 1
        self.metrics.source_errors.labels(str(state.source.path)).inc()
        delay = backoff_after(state.failures)
        state.retry_at = self._monotonic.now() + delay
        message = str(exc)
        if message != state.last_error:
            log.warning(
                "source failed",
                source=str(state.source.path),
                error=message,
                failures=state.failures,
                retry_in=round(delay, 2),
            )
        state.last_error = message
        hopeless = message == "file not found" and not state.shipped
        if self.options.once and (state.failures >= self.options.max_failures or hopeless):
            state.gave_up = True
            self.summary.failed_sources.append(f"{state.source.path}: {message}")
            log.error("source given up", source=str(state.source.path), error=message)

    def _source_recovered(self, state: _State) -> None:
        if state.failures:
            log.info("source recovered", source=str(state.source.path), failures=state.failures)
        state.failures, state.last_error, state.skipped = 0, None, False

    def _sink_failed(self, exc: SinkError) -> None:
        self._sink_failures += 1
        self.summary.sink_errors += 1
        self.metrics.sink_errors.inc()
        self.sink.close()
        delay = backoff_after(self._sink_failures)
        self._sink_retry_at = self._monotonic.now() + delay
        log.warning(
            "sink write failed",
            sink=self.sink.name,
            error=str(exc),
            failures=self._sink_failures,
            retry_in=round(delay, 2),
        )
        if self.options.once and self._sink_failures >= self.options.max_failures:
            raise SensorfleetError(
                f"{self.sink.name}: giving up after {self._sink_failures} failed attempts "
                f"(nothing was marked for unacknowledged rows): {exc}"
            )

    def _sink_recovered(self) -> None:
        if self._sink_failures:
            log.info("sink recovered", sink=self.sink.name, failures=self._sink_failures)
            self._sink_failures = 0

    # -- the loop --------------------------------------------------------------

    def _pass(self) -> bool:
        """One turn over every due source; True if some source has more rows waiting."""
        more = False
        for key, state in list(self._states.items()):
            now = self._monotonic.now()
            if self._stop.is_set() or now < self._sink_retry_at:
                break
            if state.done or state.gave_up or now < state.retry_at:
                continue
            if not self._due(key, state, now):
                continue
            state.polled_at = now
            try:
                waiting = self._drain(state)
            except _SinkDownError:
                state.pending = True  # read it again once the sink's backoff is over
                return False
            # A failed source is read again as soon as its backoff is over.
            state.pending = waiting or state.failures > 0
            more = waiting or more
        return more

    def _due(self, key: str, state: _State, now: float) -> bool:
        """Whether to read a source now: always with ``once``; when following, if it had
        more rows, is new, was last read ``interval`` ago, or (watching) its file changed."""
        if self.options.once or state.pending or key not in self._seen:
            return True
        if now - state.polled_at >= self.options.interval:
            return True
        return self.options.watch_interval > 0 and self._seen[key] != state.source.signature()

    def _next_wake(self) -> float:
        """When to poll again after a pass in which no source had more rows waiting."""
        now = self._monotonic.now()
        if self.options.once:
            # Every pending source is backing off: wake for the first one that is due.
            due = [s.retry_at for s in self._states.values() if not (s.done or s.gave_up)]
            return max(min(due, default=now), self._sink_retry_at, now)
        return max(now + self.options.interval, self._sink_retry_at)

    def _changed(self) -> bool:
        """True if some source not backing off is due (most often: its file changed)."""
        now = self._monotonic.now()
        for key, state in list(self._states.items()):
            if state.done or state.gave_up or now < state.retry_at:
                continue
            if self._due(key, state, now):
                return True
        return False

    def _idle(self, wake: float) -> None:
        """Wait until ``wake``; when following, return as soon as a node commits rows.

        Following watches each file's WAL instead of polling its table: a few stats
        every ``watch_interval`` cost far less than a query, and a reading reaches the
        sink within that interval of its commit instead of within ``interval``.
        """
        while not self._stop.is_set():
            now = self._monotonic.now()
            if now >= wake:
                return
            watching = not self.options.once and now >= self._sink_retry_at
            if watching and self.options.watch_interval > 0 and self._changed():
                return
            pause = wake - now
            if watching and self.options.watch_interval > 0:
                pause = min(pause, self.options.watch_interval)
            self._monotonic.wait_until(now + pause, self._stop)

    def run(self) -> SyncSummary:
        """Open the sink (``SinkError`` if unreachable), then follow or drain the sources."""
        started = self._monotonic.now()
        self.sink.open()
        log.info(
            "sync starting",
            sink=self.sink.name,
            inputs=[str(p) for p in self.inputs],
            mode="once" if self.options.once else "follow",
            cursor=str(self.cursor.path) if self.cursor else None,
            batch_size=self.options.batch_size,
        )
        try:
            self.scan()
            next_scan = self._monotonic.now() + 1.0
            while not self._stop.is_set():
                if not self.options.once and self._monotonic.now() >= next_scan:
                    self.scan()
                    next_scan = self._monotonic.now() + 1.0
                more = self._pass()
                if self._monotonic.now() - self._last_log >= self.options.log_interval:
                    self.log_progress()
                if self.options.once and all(s.done or s.gave_up for s in self._states.values()):
                    break
                if not more:
                    wake = self._next_wake()
                    # Following: new files in a folder are found within a second too.
                    self._idle(wake if self.options.once else min(wake, next_scan))
        finally:
            self.summary.seconds = self._monotonic.now() - started
            self.log_progress()
            self._sink_thread.shutdown(wait=True)
            for state in self._states.values():
                state.source.close()
            self.sink.close()
        return self.summary

    def log_progress(self) -> None:
        """One line per source (rows/s, backlog) and one for the whole collector."""
        now = self._monotonic.now()
        elapsed = max(now - self._last_log, 1e-9)
        total_rows = total_backlog = 0
        for state in self._states.values():
            if state.skipped:
                continue
            backlog: int | None = None
            source = state.source
            if source.database_id is not None and state.last_error is None:
                try:
                    source.open()
                    cursor, database = self.cursor, source.database_id
                    after = cursor.get(_cursor_key(state, database)) if cursor else None
                    backlog = source.backlog(after)
                except SourceError:
                    backlog = None
            if backlog is not None:
                self.metrics.backlog.labels(str(source.path)).set(backlog)
                total_backlog += backlog
            total_rows += state.since_log
            log.info(
                "source progress",
                source=str(source.path),
                table=source.layout.table,
                database_id=source.database_id,
                rows=state.since_log,
                rows_per_second=round(state.since_log / elapsed, 1),
                backlog=backlog,
                error=state.last_error,
            )
            state.since_log = 0
        log.info(
            "sync progress",
            rows=total_rows,
            rows_per_second=round(total_rows / elapsed, 1),
            backlog=total_backlog,
            sources=len(self._states),
            sink_errors=self.summary.sink_errors,
        )
        self._last_log = now
