"""Prometheus metrics of the collector, on their own registry (served by ``--metrics-port``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class SyncMetrics:
    """Counters and gauges the collector updates as it ships batches."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rows_shipped = Counter(
            "sensorfleet_sync_rows_shipped",
            "Rows acknowledged by the sink and marked (or cursor advanced), per source file.",
            ["source"],
            registry=r,
        )
        self.rows_stored = Counter(
            "sensorfleet_sync_rows_stored",
            "Rows new to the sink; lower than rows shipped when a batch was sent again.",
            registry=r,
        )
        self.key_conflicts = Counter(
            "sensorfleet_sync_key_conflicts",
            "Readings kept beside the central table because their key held another reading.",
            registry=r,
        )
        self.batches = Counter(
            "sensorfleet_sync_batches", "Batches acknowledged by the sink.", registry=r
        )
        self.sink_errors = Counter(
            "sensorfleet_sync_sink_errors",
            "Batches the sink did not acknowledge (sent again later).",
            registry=r,
        )
        self.source_errors = Counter(
            "sensorfleet_sync_source_errors",
            "Failed reads or marks of a node database, per source file.",
            ["source"],
            registry=r,
        )
        self.backlog = Gauge(
            "sensorfleet_sync_backlog_rows",
            "Rows still to ship, per source file (updated every log interval).",
            ["source"],
            registry=r,
        )
        self.sources = Gauge(
            "sensorfleet_sync_sources", "Node databases currently followed.", registry=r
        )
        self.batch_seconds = Histogram(
            "sensorfleet_sync_batch_seconds",
            "Time from reading a batch to marking it.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.last_success = Gauge(
            "sensorfleet_sync_last_success_timestamp_seconds",
            "Unix time of the last acknowledged batch.",
            registry=r,
        )

    def serve(self, host: str, port: int) -> Any:
        """Serve ``/metrics`` on a background thread; return the server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
