"""Sinks: where the collector ships rows, one module per kind, all behind ``base.Sink``."""

from .base import CENTRAL_COLUMNS, KEY_COLUMNS, Batch, Sink, SinkError

__all__ = ["CENTRAL_COLUMNS", "KEY_COLUMNS", "Batch", "Sink", "SinkError"]
