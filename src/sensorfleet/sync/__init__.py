"""Shipping node rows to a central store: the reference collector behind ``sensorfleet sync``.

Data path, top to bottom: ``source`` (a node database and the protocol SQL)
→ ``collector`` (the loop) → ``sinks`` (one module per destination, chosen
by ``sink_url``); ``cursor`` holds high-water marks for read-only collecting.
"""

from .collector import Collector, SyncOptions, SyncSummary
from .cursor import CursorStore
from .sink_url import parse_sink_url
from .sinks.base import Batch, Sink, SinkError
from .source import NodeDatabase, SourceError

__all__ = [
    "Batch",
    "Collector",
    "CursorStore",
    "NodeDatabase",
    "Sink",
    "SinkError",
    "SourceError",
    "SyncOptions",
    "SyncSummary",
    "parse_sink_url",
]
