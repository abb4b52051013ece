"""Command-line edge: parse arguments, call the library, turn errors into exit codes.

Each subcommand lives in its own module exposing ``register(subparsers)``;
handlers return an exit status. ``InputError`` becomes one line per problem
on stderr and exit 2; other ``SensorfleetError`` exit 1; never a traceback
for something the user can fix.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from .._deferred import deferring
from ..errors import SensorfleetError

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("run", "models", "identities", "console", "sync", "report", "score")

# NumPy's BLAS (OpenBLAS in the wheels; MKL or an OpenMP build elsewhere) starts one
# worker thread per core when numpy is imported, sized from the host's cores, not the
# container's CPU limit. No command does linear algebra, so they would only sit idle.
# Read once, when the library loads: set before the first ``import numpy``; a value
# already in the environment is kept.
SINGLE_THREADED_NUMERICS: dict[str, str] = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one clear line, as every other input error does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: {message}\n")
        raise SystemExit(2)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``sensorfleet`` parser; with ``argv`` naming a command, only that one is loaded.

    Each subcommand module imports what its command needs (the report's
    statistics, the sync sinks...), so a node started with ``run`` does not
    carry the others' code in memory.
    """
    parser = _Parser(
        prog="sensorfleet",
        description="Industrial edge-node sensor simulator fleet.",
    )
    parser.add_argument("--version", action="version", version=f"sensorfleet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in _commands_for(argv):
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def _commands_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The subcommand ``argv`` starts with, or all of them (for help, or a mistake to report)."""
    args = sys.argv[1:] if argv is None else argv
    return (args[0],) if args and args[0] in COMMANDS else COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sensorfleet`` console script."""
    for name, value in SINGLE_THREADED_NUMERICS.items():
        os.environ.setdefault(name, value)  # before build_parser imports numpy
    with deferring("asyncio"):  # structlog's; build_parser imports it, this first
        import structlog  # noqa: F401
    args = build_parser(argv).parse_args(argv)
    try:
        status: int = args.handler(args)
    except SensorfleetError as exc:
        for line in str(exc).splitlines():
            sys.stderr.write(f"error: {line}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`sensorfleet models | head`): nothing more can be said to it,
        # and Python would print a traceback when it flushes stdout at exit. Point stdout at
        # /dev/null and end as a shell expects of a process whose pipe closed (128 + SIGPIPE).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    return status


if __name__ == "__main__":
    sys.exit(main())
