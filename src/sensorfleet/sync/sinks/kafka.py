"""``kafka://HOST:PORT[,HOST:PORT…]/TOPIC[?librdkafka.setting=value…]``: one message per reading.

The producer is confluent-kafka (librdkafka) with ``enable.idempotence=true`` and
``acks=all``: the broker drops repeats of its own retries, and a message counts
only once every in-sync replica has it. Each reading is one message: key = the
sensor id (a sensor's readings stay in order within a partition, and the
``murmur2_random`` partitioner sends a key to the same partition a Java client
would), value = the reading as the JSONL sink writes it, with ``database_id`` and
``source_row_id``. A batch counts as acknowledged only when every message in it
was acknowledged by the broker: ``flush`` returned with no message left in the
queue and no failed delivery report (librdkafka reports only failures to
Python, ``delivery.report.only.error``, so a message that left the queue without
one was delivered). After any failure the producer is dropped with its queue
purged, so nothing is sent again behind the collector's back.

Topics are never created by sync: a topic that does not exist is an error naming
it (checked from the cluster's metadata, which asks for no auto-creation).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..._redaction import scrub
from ..topics import TopicTemplate
from .base import Batch, SinkError

# librdkafka's own log lines (connection failures, …) go through the standard logging
# module, which the CLI renders like every other log line on standard error.
LIBRDKAFKA_LOG = logging.getLogger("sensorfleet.sync.librdkafka")

# Settings sync needs; a URL query parameter may not weaken them.
REQUIRED = {"enable.idempotence": "true", "acks": "all"}
# Spellings librdkafka takes for the same setting or value.
SETTING_ALIASES = {"request.required.acks": "acks"}
VALUE_ALIASES = {("acks", "-1"): "all"}
# Kafka's own limits on a topic name.
MAX_TOPIC_LENGTH = 249
RESERVED_TOPICS = frozenset({".", ".."})
# Settings the Python client reads itself, as booleans (URL values are converted).
BOOLEAN_SETTINGS = frozenset({"delivery.report.only.error"})
DEFAULTS: dict[str, Any] = {
    # Only failures call back into Python; a message that leaves the queue without one
    # (flush returns 0) was delivered. Saves a Python call per reading.
    "delivery.report.only.error": True,
    "linger.ms": "5",
    "partitioner": "murmur2_random",
    "compression.type": "lz4",
    "queue.buffering.max.messages": "1000000",
}


class KafkaSink:
    """Readings produced to one Kafka topic (or one per sensor, location… with a template)."""

    def __init__(
        self,
        config: dict[str, Any],
        topic: TopicTemplate,
        display: str,
        timeout: float = 10.0,
        secrets: Sequence[str] = (),
    ) -> None:
        self.secrets = secrets  # hidden from librdkafka's errors and log lines
        self._scrubber = _Scrubber(secrets)
        self.config = {
            **DEFAULTS,
            "message.timeout.ms": str(max(1000, round(timeout * 1000))),
            **config,
            **REQUIRED,
        }
        self.topic = topic
        self.display = display
        self.timeout = timeout
        self._producer: Any = None
        self._known: set[str] = set()
        self._failures: list[str] = []
        self._undelivered: list[str] = []

    @property
    def name(self) -> str:
        return self.display

    def open(self) -> None:
        from confluent_kafka import KafkaException, Producer

        if self.secrets and self._scrubber not in LIBRDKAFKA_LOG.filters:
            LIBRDKAFKA_LOG.addFilter(self._scrubber)
        try:
            producer = Producer(
                {
                    **self.config,
                    "error_cb": self._on_error,
                    "on_delivery": self._on_delivery,
                    "logger": LIBRDKAFKA_LOG,
                }
            )
        except (KafkaException, TypeError, ValueError) as exc:
            raise SinkError(f"{self.name}: {one_line(exc, self.secrets)}") from None
        self._producer = producer
        self._known.clear()
        try:
            self._refresh_topics()
            if not self.topic.templated:
                self._require(self.topic.text)
        except SinkError:
            self.close()
            raise

    def _on_error(self, error: Any) -> None:
        # Client-level errors (all brokers down, authentication); deliveries still time out.
        if error.fatal():
            self._failures.append(str(error))

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._undelivered.append(str(error))

    def _refresh_topics(self) -> None:
        from confluent_kafka import KafkaException

        try:
            # No topic named: a metadata request that cannot auto-create anything.
            metadata = self._producer.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise SinkError(f"{self.name}: connect: {one_line(exc, self.secrets)}") from None
        self._known = {
            name for name, topic in metadata.topics.items() if topic.error is None and name
        }

    def _require(self, topic: str) -> None:
        if topic in self._known:
            return
        self._refresh_topics()
        if topic not in self._known:
            raise SinkError(
                f"{self.name}: topic {topic!r} does not exist; create it first "
                "(sync does not rely on the broker creating topics)"
            )

    def write(self, batch: Batch) -> None:
        from confluent_kafka import KafkaException

        topics = self.topic.topics(batch.rows, batch.layout)
        for topic in set(topics):  # before any broker is asked about it
            problem = topic_problem(topic)
            if problem is not None:
                raise SinkError(f"{self.name}: {problem} (from the template {self.topic.text!r})")
        if self._producer is None:
            self.open()
        producer = self._producer
        for topic in set(topics):
            self._require(topic)
        failed = self._undelivered = []
        key_at = 2  # (id, timestamp, sensor_id, …)
        try:
            for row, topic, value in zip(batch.rows, topics, batch.json_lines(), strict=True):
                while True:
                    try:
                        producer.produce(topic, value, row[key_at])
                        break
                    except BufferError:  # local queue full: let deliveries drain it
                        producer.poll(0.05)
            left = producer.flush(self.timeout)
        except KafkaException as exc:
            self.close()
            raise SinkError(f"{self.name}: produce: {one_line(exc, self.secrets)}") from None
        problem = None
        if failed:
            problem = f"{len(failed)} of {len(batch)} messages not delivered: {failed[0]}"
        elif left:
            problem = f"{left} of {len(batch)} messages without a delivery report after "
            problem += f"{self.timeout:g}s"
        elif self._failures:
            problem = self._failures[-1]
        if problem is not None:
            self.close()
            raise SinkError(f"{self.name}: {scrub(problem, self.secrets)}")

    def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            # Drop anything unacknowledged: the collector sends those rows again itself.
            producer.purge()
            producer.flush(0)
            self._failures.clear()


def one_line(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """A librdkafka exception as one line (its KafkaError's own text, not the repr), with
    any of ``secrets`` it repeats hidden."""
    error: Any = exc.args[0] if exc.args else None
    text = str(error.str()) if hasattr(error, "str") else str(exc)
    return " ".join(scrub(text, secrets).split()) or type(exc).__name__


def topic_problem(topic: str) -> str | None:
    """Why Kafka would refuse ``topic`` as a name (None if it would not).

    The characters are checked where the topic is parsed; a template's placeholders
    are filled with topic-safe text, but can still make it too long or a dot alone.
    """
    if topic in RESERVED_TOPICS:
        return f"topic {topic!r}: Kafka does not allow '.' or '..' as a topic name"
    if len(topic) > MAX_TOPIC_LENGTH:
        return (
            f"topic {topic[:40]!r}… is {len(topic)} characters; Kafka topics have at most "
            f"{MAX_TOPIC_LENGTH}"
        )
    return None


class _Scrubber(logging.Filter):
    """Hides the sink's secrets in librdkafka's own log lines (it may quote settings)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = scrub(message, self.secrets)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True
