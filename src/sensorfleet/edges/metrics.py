"""Prometheus metrics of a node, read from the loop's counters at scrape time.

Nothing here is updated on the hot path: a custom collector takes one
``NodeLoop.summary()`` snapshot per scrape and turns it into metric families,
on a registry of its own (never the global one, so tests and embedders can
run several nodes in one process).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..node.loop import NodeLoop
from ..node.profiles import ANOMALY_TYPES
from .watcher import WATCH_MODES, ReloadStats

IDENTITY_LABELS: tuple[str, ...] = (
    "sensor_id",
    "type",
    "location",
    "manufacturer",
    "model",
    "firmware_version",
    "timezone",
)
MAX_INFO_SERIES = 1000  # one info series per sensor; beyond this, only counts


class NodeCollector(Collector):
    """Yields the node's metrics from a fresh snapshot on every scrape."""

    def __init__(self, loop: NodeLoop, reloads: ReloadStats | None = None) -> None:
        self.loop = loop
        self.reloads = reloads

    def collect(self) -> Iterator[Metric]:
        loop = self.loop
        summary = loop.summary()
        views = loop.sensor_views()

        info = InfoMetricFamily(
            "sensorfleet_node",
            "Identity of each simulated sensor (labels) as currently configured.",
            labels=IDENTITY_LABELS,
        )
        for view in views[:MAX_INFO_SERIES]:
            ident = view.identity
            info.add_metric(
                [
                    ident.id,
                    ident.type,
                    ident.location,
                    ident.manufacturer,
                    ident.model,
                    ident.firmware_version,
                    ident.timezone,
                ],
                {},
            )
        yield info

        config = InfoMetricFamily(
            "sensorfleet_config", "Hash of the effective configuration.", labels=["config_hash"]
        )
        config.add_metric([loop.config.digest()], {})
        yield config

        yield GaugeMetricFamily(
            "sensorfleet_sensors", "Sensors simulated by this process.", value=len(views)
        )
        yield CounterMetricFamily(
            "sensorfleet_readings_generated",
            "Readings generated (written, buffered or dropped).",
            value=summary.readings_generated,
        )

        written = CounterMetricFamily(
            "sensorfleet_readings_written",
            "Rows committed to the database, by anomaly type ('none' for normal readings).",
            labels=["anomaly_type"],
        )
        written.add_metric(["none"], summary.rows_written - sum(summary.anomalies.values()))
        for kind in ANOMALY_TYPES:
            written.add_metric([kind], summary.anomalies.get(kind, 0))
        yield written

        errors = CounterMetricFamily(
            "sensorfleet_write_errors",
            "Failed flushes, by error class.",
            labels=["error_class"],
        )
        for error_class, count in sorted(summary.errors.items()):
            errors.add_metric([error_class], count)
        yield errors

        moved = CounterMetricFamily(
            "sensorfleet_databases_moved_aside",
            "Database files moved aside intact (corrupt, or foreign: not this node's file).",
            labels=["reason"],
        )
        for reason in ("corrupt", "foreign"):
            moved.add_metric([reason], summary.moved_aside.get(reason, 0))
        yield moved
        yield CounterMetricFamily(
            "sensorfleet_database_restores",
            "Database files found behind the ids they had handed out (a restored backup); "
            "new rows continued above them.",
            value=summary.restores,
        )

        writers = summary.writers
        yield CounterMetricFamily(
            "sensorfleet_write_retries",
            "Write attempts repeated after a transient failure.",
            value=sum(w.retries for w in writers),
        )
        yield GaugeMetricFamily(
            "sensorfleet_buffered_rows",
            "Rows waiting in memory for the next successful flush.",
            value=summary.rows_unwritten,
        )
        yield CounterMetricFamily(
            "sensorfleet_rows_dropped",
            "Oldest buffered rows dropped because the buffer bound was reached.",
            value=summary.rows_dropped,
        )
        yield GaugeMetricFamily(
            "sensorfleet_consecutive_write_failures",
            "Failed flushes in a row (the worst database file).",
            value=max((w.consecutive_failures for w in writers), default=0),
        )
        successes = [w.last_success for w in writers if w.last_success is not None]
        if successes:
            yield GaugeMetricFamily(
                "sensorfleet_last_write_success_timestamp_seconds",
                "Unix time of the last committed flush (the oldest among database files).",
                value=min(successes),
            )
        if summary.last_reading_at is not None:
            yield GaugeMetricFamily(
                "sensorfleet_last_reading_timestamp_seconds",
                "Scheduled Unix time of the newest reading generated.",
                value=summary.last_reading_at,
            )

        active: Counter[str] = Counter()
        for view in views:
            if view.episode is not None and not view.episode.pending:
                active[view.episode.kind] += 1
        episodes = GaugeMetricFamily(
            "sensorfleet_anomaly_episodes_active",
            "Sensors currently inside an anomaly episode, by type.",
            labels=["anomaly_type"],
        )
        for kind in ANOMALY_TYPES:
            episodes.add_metric([kind], active.get(kind, 0))
        yield episodes

        stats = self.reloads or ReloadStats()  # zeros when reloading is off
        reloads = CounterMetricFamily(
            "sensorfleet_reloads",
            "Edits of the config or identity files, by outcome.",
            labels=["result"],
        )
        reloads.add_metric(["applied"], stats.applied)
        reloads.add_metric(["rejected"], stats.rejected)
        yield reloads

        # One series per mode, 1 on the current one: an alert on
        # sensorfleet_config_watch_mode{mode="polling_fallback"} == 1 finds the nodes the
        # kernel refused file events to.
        watch = GaugeMetricFamily(
            "sensorfleet_config_watch_mode",
            "How the node notices edits of its files: 1 on the current mode.",
            labels=["mode"],
        )
        for mode in WATCH_MODES:
            watch.add_metric([mode], 1.0 if stats.watch_mode == mode else 0.0)
        yield watch

        yield GaugeMetricFamily(
            "sensorfleet_start_time_seconds",
            "Unix time the node started.",
            value=loop.started_at,
        )


def build_registry(loop: NodeLoop, reloads: ReloadStats | None = None) -> CollectorRegistry:
    """A registry with the node's collector and the standard process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(loop, reloads))
    ProcessCollector(registry=registry)
    return registry
