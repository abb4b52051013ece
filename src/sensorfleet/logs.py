"""Structured logging: JSON lines to the log file, readable lines on a terminal.

Events are constant lowercase phrases (``batch written``) with key/value
fields. In a container (no TTY) the console gets JSON too, so log shippers
can parse it; ``logging.format`` forces either style.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import structlog

ROOT = "sensorfleet"
# The levels every command accepts (the same names as ``logging.level`` in config.yaml).
LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
]


def _formatter(renderer: Any) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def configure(
    level: str = "INFO",
    file: str | None = None,
    console: bool = True,
    fmt: str = "auto",
) -> list[str]:
    """Set up logging; return warnings to log once logging works (e.g. unwritable file)."""
    structlog.configure(
        # Drop filtered-out events before any formatting work is done.
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate = False
    problems = []
    if console:
        use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
        renderer = (
            structlog.processors.JSONRenderer()
            if use_json
            else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        )
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(_formatter(renderer))
        root.addHandler(stream)
    if file:
        try:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(file, encoding="utf-8")
        except OSError as exc:
            problems.append(f"cannot open log file {file}: {exc.strerror}")
        else:
            handler.setFormatter(_formatter(structlog.processors.JSONRenderer()))
            root.addHandler(handler)
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    set_level(level)
    return problems


def set_level(level: str) -> None:
    """Change the level at run time (used by hot reload)."""
    logging.getLogger(ROOT).setLevel(getattr(logging, level.upper(), logging.INFO))


def adopt_library_logs(*names: str, level: int = logging.WARNING) -> None:
    """Send a library's own log records (asyncua, pymodbus) through our handlers.

    They come out in the node's format (JSON lines in containers) instead of
    as bare text on stderr; below ``level`` they are dropped, as they are chatty.
    """
    handlers = logging.getLogger(ROOT).handlers
    for name in names:
        library = logging.getLogger(name)
        library.handlers = [_OneLine(handlers)]
        library.setLevel(level)
        library.propagate = False


class _OneLine(logging.Handler):
    """Hands a library's records to our handlers, a record with a traceback as one line
    (its message and the error): a traceback inside a log event is a wall of text in a
    JSON field. A handler, not a filter: the records come from the library's child
    loggers, and a logger's filters see only the records created on it."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__()
        self.targets = list(handlers)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = record.exc_text = None
        for handler in self.targets:
            if record.levelno >= handler.level:
                handler.handle(record)
