"""Container health check: exit 0 when the node's ``/healthz`` answers 200.

Run by the image's HEALTHCHECK inside the container, so it needs nothing but the
standard library. The port is the node's ``MONITORING_PORT`` (8080 by default).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(url: str, timeout: float) -> str | None:
    """Return None when ``url`` answers 200, otherwise what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}: {exc.read(200).decode(errors='replace').strip()}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} unreachable: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def main() -> int:
    """Check the node on this host and report the outcome as an exit status."""
    port = os.environ.get("MONITORING_PORT") or "8080"
    problem = check(f"http://127.0.0.1:{port}/healthz", timeout=4.0)
    if problem is not None:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
