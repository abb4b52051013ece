"""The node's write path: buffer readings, flush in batches, ride out outages.

Readings wait in a bounded in-memory buffer and are flushed every
``batch_size`` rows or ``flush_interval_seconds``, whichever comes first.
When the database is unavailable the buffer keeps them and flushes resume
with backoff; past ``max_buffered_rows`` the oldest are dropped and counted,
never silently. Only after ``max_consecutive_failures`` does the node give up.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain

import structlog

from ..errors import StoreUnavailableError
from .config import Database
from .readings import Block, Readings, Row
from .store import Store, TableRows, backoff_after

log = structlog.get_logger("sensorfleet.writer")


@dataclass
class WriteStats:
    """Counters of one writer, read by the summary and the metrics endpoint."""

    rows_written: int = 0
    anomalies_written: Counter[str] = field(default_factory=Counter)
    rows_by_sensor: Counter[str] = field(default_factory=Counter)
    rows_dropped: int = 0
    flushes: int = 0
    retries: int = 0  # flushes that re-tried rows after a failed one
    errors: Counter[str] = field(default_factory=Counter)
    consecutive_failures: int = 0
    failing_since: float | None = None
    last_success: float | None = None
    last_error: str | None = None


class BufferedWriter:
    """Buffers blocks for one database file and writes them in batches."""

    def __init__(self, store: Store, settings: Database) -> None:
        self.store = store
        self.settings = settings
        self.stats = WriteStats()
        self._pending: deque[Readings] = deque()
        self._pending_rows = 0
        self._last_flush: float | None = None
        self._retry_at = 0.0

    def reconfigure(self, settings: Database) -> None:
        """Use new database settings (batch size, retries, timeouts…) from the next flush."""
        self.settings = settings
        self.store.settings = settings

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def add(self, block: Readings) -> None:
        """Queue a block; drop the oldest rows (counted) if the bound is exceeded."""
        if block.row_count == 0:
            return
        self._pending.append(block)
        self._pending_rows += block.row_count
        excess = self._pending_rows - self.settings.max_buffered_rows
        while excess > 0 and self._pending:
            oldest = self._pending[0]
            if oldest.row_count <= excess:
                self._pending.popleft()
                dropped = oldest.row_count
            else:
                cut = _position_after_rows(oldest, excess)
                self._pending[0] = oldest.slice(cut, len(oldest))
                dropped = oldest.row_count - self._pending[0].row_count
            self._pending_rows -= dropped
            self.stats.rows_dropped += dropped
            excess -= dropped
            log.warning(
                "rows dropped",
                rows=dropped,
                total_dropped=self.stats.rows_dropped,
                reason="buffer full",
                max_buffered_rows=self.settings.max_buffered_rows,
                path=str(self.store.path),
            )

    def discard(self, sensor_ids: set[str]) -> Counter[str]:
        """Remove the buffered rows of these sensors (counted as dropped); rows by sensor."""
        discarded: Counter[str] = Counter()
        kept: deque[Readings] = deque()
        for block in self._pending:
            if block.labels.sensor_id in sensor_ids:
                discarded[block.labels.sensor_id] += block.row_count
            else:
                kept.append(block)
        self._pending = kept
        total = sum(discarded.values())
        self._pending_rows -= total
        self.stats.rows_dropped += total
        return discarded

    def next_deadline(self, now: float) -> float | None:
        """When this writer next wants to flush (None when idle)."""
        if not self._pending:
            return None
        if self.stats.consecutive_failures:
            return self._retry_at
        if self._pending_rows >= self.settings.batch_size or self._last_flush is None:
            # The first rows go out at once: a node that just started shows in its file
            # (and to whoever waits for it there) without waiting out an interval.
            return now
        return self._last_flush + self.settings.flush_interval_seconds

    @property
    def exhausted(self) -> bool:
        """True once ``max_consecutive_failures`` flushes in a row have failed."""
        limit = self.settings.max_consecutive_failures
        return bool(limit) and self.stats.consecutive_failures >= limit

    def raise_if_exhausted(self) -> None:
        """Raise ``StoreUnavailableError`` when the node should give up on this file."""
        if self.exhausted:
            raise StoreUnavailableError(
                f"{self.store.path}: gave up after {self.stats.consecutive_failures} "
                f"consecutive failed writes ({self.stats.last_error}); "
                f"{self._pending_rows} buffered rows not written"
            )

    def maybe_flush(self, now: float) -> None:
        """Flush if a deadline passed; raise ``StoreUnavailableError`` when giving up."""
        deadline = self.next_deadline(now)
        if deadline is not None and now >= deadline and not self.flush(now):
            self.raise_if_exhausted()

    def flush(self, now: float) -> bool:
        """Write everything pending in one transaction, oldest first; False if it failed."""
        self._last_flush = now
        if not self._pending:
            return True
        blocks = list(self._pending)

        # While backing off, one attempt per flush: the writer's own backoff does
        # the waiting, so the loop (and reloads, and control commands) keep going.
        failing = self.stats.consecutive_failures > 0
        if failing:
            self.stats.retries += 1
        try:
            written = self.store.write_tables(_by_table(blocks), attempts=1 if failing else None)
        except (sqlite3.Error, OSError) as exc:
            self._record_failure(now, exc)
            return False
        self._record_success(now, blocks, written)
        return True

    def _record_success(self, now: float, blocks: list[Readings], written: int) -> None:
        # The next interval runs from the newest written reading's scheduled time,
        # not from this flush: a flush that ran late (a wake-up of its own, a
        # retry) then falls back in step with the readings, and a node at 1
        # reading/s with a 1 s interval flushes on its reading's wake-up
        # instead of waking again a moment later. But not from a reading a whole
        # interval or more behind (a loop catching up): the next flush would be due
        # at once, and the loop would commit after every sensor's block, a
        # transaction each, which kept a node of 10,000 sensors behind for good.
        newest = max(int(b.times_us[-1]) for b in blocks) / 1e6
        interval = self.settings.flush_interval_seconds
        self._last_flush = newest if now - interval < newest <= now else now
        for _ in blocks:
            self._pending.popleft()
        stats = self.stats
        self._pending_rows -= written
        stats.rows_written += written
        stats.flushes += 1
        classic = [b for b in blocks if isinstance(b, Block)]
        stats.anomalies_written.update(Block.anomaly_counts_of(classic))
        by_sensor = stats.rows_by_sensor
        for block in blocks:
            if not isinstance(block, Block):
                stats.anomalies_written.update(block.anomaly_counts())
            by_sensor[block.labels.sensor_id] += block.row_count
        failures, failing_since = stats.consecutive_failures, stats.failing_since
        # The state first, the log line after: whoever reads "write recovered" (a person, a
        # test, a log shipper) and then asks /healthz must find the node healthy.
        stats.consecutive_failures = 0
        stats.failing_since = None
        stats.last_success = now
        if failures:
            log.info(
                "write recovered",
                after_failures=failures,
                outage_s=round(now - (failing_since or now), 3),
                rows=written,
                rows_dropped=stats.rows_dropped,
                path=str(self.store.path),
            )
        # The committed total, so a crash can be checked against it (DEBUG only).
        log.debug("batch written", rows=written, rows_written=stats.rows_written)

    def _record_failure(self, now: float, exc: BaseException) -> None:
        stats = self.stats
        kind = type(exc).__name__
        stats.errors[kind] += 1
        stats.consecutive_failures += 1
        if stats.failing_since is None:
            stats.failing_since = now
        stats.last_error = f"{kind}: {exc}"
        backoff = backoff_after(stats.consecutive_failures)
        self._retry_at = now + backoff
        log.error(
            "write failed",
            error=str(exc),
            error_class=kind,
            consecutive_failures=stats.consecutive_failures,
            max_consecutive_failures=self.settings.max_consecutive_failures,
            buffered=self._pending_rows,
            retry_in_s=round(backoff, 2),
            path=str(self.store.path),
        )


def _by_table(blocks: list[Readings]) -> list[TableRows]:
    """The blocks' rows grouped by table layout, oldest first within each."""
    # Keyed by the layout object first: hashing a layout (a frozen dataclass of columns)
    # for each of the 25,000 blocks of a large node's flush cost more than writing them.
    same: dict[int, list[Readings]] = {}
    groups: dict[object, list[Readings]] = {}
    for block in blocks:
        layout = block.layout
        group = same.get(id(layout))
        if group is None:
            group = same[id(layout)] = groups.setdefault(layout, [])
        group.append(block)
    parts = []
    for group in groups.values():

        def rows(group: list[Readings] = group) -> Iterator[Row]:
            classic = [b for b in group if isinstance(b, Block)]
            if len(classic) == len(group):
                return Block.rows_of(classic)
            return chain.from_iterable(b.iter_rows() for b in group)

        def truth(group: list[Readings] = group) -> Iterator[Row]:
            return chain.from_iterable(b.truth_rows() or () for b in group)

        # A layout without label columns is an equipment table whose labels are hidden.
        hidden = not group[0].layout.with_role("label")
        parts.append(TableRows(group[0].layout, rows, truth if hidden else None))
    return parts


def _position_after_rows(block: Readings, rows: int) -> int:
    """Index in ``block`` just past its first ``rows`` kept readings."""
    if block.keep is None:
        return rows
    kept = block.keep.cumsum()
    return int((kept < rows).sum()) + 1 if rows else 0
