"""The one way tests wait: poll a condition until it holds, or fail saying what never came."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object],
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` every ``interval`` seconds until it is truthy, for ``timeout`` at most."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
