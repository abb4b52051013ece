"""``mqtt://[user:password@]host:port/topic``: publish at QoS 1 (paho-mqtt).

The broker's PUBACK is the acknowledgement. With a plain topic a batch is one
JSON message, the same document the HTTP sink posts. With a topic template
(``factory/{location}/{sensor_id}/readings``, see ``..topics``) every reading
is its own message on its own topic, the JSONL line of that reading, and the
batch counts once every message has its PUBACK. After any failure the client is dropped
and a fresh one connects for the next attempt, so no stale queued message is
replayed behind the collector's back. QoS 1 is at-least-once: subscribers
drop repeats by ``(database_id, source_row_id)``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ..topics import TopicTemplate
from .base import Batch, SinkError


class MQTTSink:
    """JSON batches published to one topic."""

    def __init__(
        self,
        host: str,
        port: int,
        topic: TopicTemplate,
        display: str,
        timeout: float = 10.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.topic = topic
        self.display = display
        self.timeout = timeout
        self.username = username
        self.password = password
        self._client: Any = None

    @property
    def name(self) -> str:
        return self.display

    def open(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        connected = threading.Event()
        outcome: list[Any] = []

        def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
            outcome.append(reason)
            connected.set()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, clean_session=True)
        client.on_connect = on_connect
        client.max_inflight_messages_set(1000)  # one message per reading with a template
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.connect_timeout = self.timeout
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise SinkError(f"{self.name}: connect: {exc}") from None
        client.loop_start()
        if not connected.wait(self.timeout) or outcome[0].is_failure:
            client.loop_stop()
            client.disconnect()
            reason = outcome[0] if outcome else "no answer from broker"
            raise SinkError(f"{self.name}: connect: {reason}")
        self._client = client

    def write(self, batch: Batch) -> None:
        if self._client is None:
            self.open()
        if self.topic.templated:
            topics = self.topic.topics(batch.rows, batch.layout)
            messages = list(zip(topics, batch.json_lines(), strict=True))
        else:
            messages = [(self.topic.text, json.dumps(batch.payload(), separators=(",", ":")))]
        deadline = time.monotonic() + self.timeout
        try:
            infos = [self._client.publish(topic, body, qos=1) for topic, body in messages]
            for info in infos:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            missing = sum(not info.is_published() for info in infos)
        except (RuntimeError, ValueError, OSError) as exc:
            self.close()
            raise SinkError(f"{self.name}: publish: {exc}") from None
        if missing:
            self.close()
            raise SinkError(
                f"{self.name}: publish: {missing} of {len(infos)} messages without a PUBACK "
                f"within {self.timeout:g}s"
            )

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.disconnect()
            client.loop_stop()
