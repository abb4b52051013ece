"""Exceptions a user can cause, each carrying the fix, and the exit code it maps to.

Exceptions only become exit statuses at the CLI edge; the core raises these
and never calls ``sys.exit`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence


class SensorfleetError(Exception):
    """Base class for errors that end a command with a clear message."""

    exit_code = 1


class InputError(SensorfleetError):
    """Bad configuration, identity or arguments: one line per problem, exit 2.

    Each problem is already formatted as ``<source>: <key path>: <what was expected>``.
    """

    exit_code = 2

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems) or ["invalid input"]
        super().__init__("\n".join(self.problems))


class StoreUnavailableError(SensorfleetError):
    """The database could not be written for longer than the node may wait."""

    exit_code = 1
