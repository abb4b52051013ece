"""What of a sink or store URL may be printed: one rule for every log line and message.

Values are hidden by what they are, not by guessing from their names: a query value
is shown only when its key is a setting known to be harmless (a table name, a
timeout, a librdkafka tuning knob); every other value becomes ``***``, whatever the
key is called (``api_key``, ``sasl.oauthbearer.config``, ``X-Amz-Signature``…). The
password in the user info is always hidden, and so is a bare user info of an HTTP
URL (``https://TOKEN@host/``: with no password, the user name is the credential).

``scrub`` removes the same values from any other text (a server's answer, a
library's error), in case it repeats them; values shorter than ``MIN_SCRUBBED``
characters are hidden in the URL but not searched for in other text, where they
would mangle every number and word they happen to occur in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

HIDDEN = "***"
MIN_SCRUBBED = 4

# Query options sensorfleet itself reads (sqlite, jsonl, csv, postgresql).
_OWN_OPTIONS = frozenset({"table", "max_bytes", "max_seconds", "partition", "retention"})
# libpq connection parameters that carry no secret (passwords, keys and passfiles do).
_LIBPQ_HARMLESS = frozenset(
    {"sslmode", "connect_timeout", "application_name", "target_session_attrs", "gssencmode"}
)
# librdkafka settings that only tune or name things; credentials, file locations, OAuth
# and JAAS configuration, and anything not listed here are hidden.
KAFKA_HARMLESS = frozenset(
    {
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "compression.type",
        "compression.codec",
        "compression.level",
        "linger.ms",
        "queue.buffering.max.ms",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "batch.size",
        "batch.num.messages",
        "message.max.bytes",
        "message.timeout.ms",
        "request.timeout.ms",
        "socket.timeout.ms",
        "socket.keepalive.enable",
        "retries",
        "message.send.max.retries",
        "retry.backoff.ms",
        "retry.backoff.max.ms",
        "reconnect.backoff.ms",
        "reconnect.backoff.max.ms",
        "max.in.flight",
        "max.in.flight.requests.per.connection",
        "partitioner",
        "sticky.partitioning.linger.ms",
        "client.id",
        "client.dns.lookup",
        "client.rack",
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "ssl.endpoint.identification.algorithm",
        "enable.ssl.certificate.verification",
        "broker.address.family",
        "api.version.request",
        "topic.metadata.refresh.interval.ms",
        "metadata.max.age.ms",
        "statistics.interval.ms",
        "delivery.report.only.error",
        "debug",
        "log_level",
    }
)
_HARMLESS: dict[str, frozenset[str]] = {
    "sqlite": _OWN_OPTIONS,
    "jsonl": _OWN_OPTIONS,
    "csv": _OWN_OPTIONS,
    "postgresql": _OWN_OPTIONS | _LIBPQ_HARMLESS,
    "postgres": _OWN_OPTIONS | _LIBPQ_HARMLESS,
    "kafka": KAFKA_HARMLESS,
}
# A bare user info is a credential where HTTP Basic carries it alone.
_BARE_USER_IS_SECRET = frozenset({"http", "https"})


def redact(url: str) -> str:
    """``url`` as it may be printed: hidden password and query values (see the module)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL is printed without anything that may be secret
        return re.sub(r"//[^/@]*@", f"//{HIDDEN}@", url.split("?", 1)[0].split("#", 1)[0])
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        name, colon, _password = user.partition(":")
        if colon:
            netloc = f"{name}:{HIDDEN}@{hosts}"
        elif scheme in _BARE_USER_IS_SECRET:
            netloc = f"{HIDDEN}@{hosts}"
    harmless = _HARMLESS.get(scheme, frozenset())
    query = "&".join(_redact_pair(pair, harmless) for pair in parts.query.split("&") if parts.query)
    fragment = HIDDEN if parts.fragment else ""
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_pair(pair: str, harmless: frozenset[str]) -> str:
    key, equals, value = pair.partition("=")
    if not value or unquote_plus(key) in harmless:
        return pair  # kept as typed
    return f"{key}{equals}{HIDDEN}"


def secrets_of(url: str) -> list[str]:
    """Every value ``redact`` hides, as typed and decoded, longest first (for ``scrub``)."""
    shown = redact(url)
    if shown == url:
        return []
    found: set[str] = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    harmless = _HARMLESS.get(parts.scheme.lower(), frozenset())
    for pair in parts.query.split("&") if parts.query else ():
        key, _, value = pair.partition("=")
        if value and unquote_plus(key) not in harmless:
            found.update((value, unquote_plus(value)))
    if "@" in parts.netloc:
        user = parts.netloc.rpartition("@")[0]
        name, colon, password = user.partition(":")
        hidden = password if colon else (name if HIDDEN + "@" in shown else "")
        found.update((hidden, unquote(hidden)))
    if parts.fragment:
        found.update((parts.fragment, unquote(parts.fragment)))
    # Longest first, so a value containing another is replaced whole.
    return sorted((s for s in found if len(s) >= MIN_SCRUBBED), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, HIDDEN)
    return text
