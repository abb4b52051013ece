"""``http://host:port/path`` and ``https://…``: POST each batch as one JSON document.

A 2xx answer is the acknowledgement. Connection errors, timeouts, 408, 429
and 5xx are retried with exponential backoff; any other answer is a refusal.
Either way the collector marks nothing until a later attempt succeeds. The
``Idempotency-Key`` header (``<database_id>:<first id>-<last id>``) and the
key columns in every row let the receiver drop a batch it already stored.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlsplit

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..._redaction import scrub
from .base import Batch, SinkError

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Transient(Exception):
    """A failure worth another attempt (network, timeout, 5xx)."""


class HTTPSink:
    """JSON batches POSTed to one URL."""

    def __init__(
        self,
        url: str,
        display: str,
        timeout: float = 10.0,
        attempts: int = 3,
        username: str | None = None,
        password: str | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.display = display
        self.secrets = secrets  # hidden from any text a server or the OS sends back
        self.timeout = timeout
        self.attempts = attempts
        self._headers = {"Content-Type": "application/json", "User-Agent": "sensorfleet-sync"}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    @property
    def name(self) -> str:
        return self.display

    def open(self) -> None:
        """Check that something listens at the URL's host and port."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=self.timeout):
                pass
        except OSError as exc:
            raise SinkError(f"{self.name}: connect: {scrub(str(exc), self.secrets)}") from None

    def _post(self, body: bytes, key: str) -> None:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={**self._headers, "Idempotency-Key": key}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode("utf-8", "replace").strip()
            message = f"server answered {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
            message = scrub(message, self.secrets)  # a server may echo the URL's key
            if exc.code in _RETRY_STATUS:
                raise _Transient(message) from None
            raise SinkError(f"{self.name}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = scrub(str(getattr(exc, "reason", exc)), self.secrets)
            raise _Transient(f"request failed: {reason}") from None

    def write(self, batch: Batch) -> None:
        body = json.dumps(batch.payload(), separators=(",", ":")).encode()
        key = f"{batch.database_id}:{batch.first_id}-{batch.last_id}"
        policy = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
            reraise=True,
        )
        try:
            policy(self._post, body, key)
        except _Transient as exc:
            raise SinkError(f"{self.name}: {exc} (after {self.attempts} attempts)") from None

    def close(self) -> None:
        """Nothing to release: each batch is one request."""
