"""Topic templates for the Kafka and MQTT sinks: one topic per sensor, location, model….

A topic may name reading fields in braces, e.g. ``factory/{location}/{sensor_id}/readings``
(MQTT) or ``readings.{location}`` (Kafka). Each field value is made topic-safe by one rule,
the same for both brokers: every character other than ``A-Z a-z 0-9 . _ -`` becomes ``_``
(so ``Factory A - Line 3`` becomes ``Factory_A_-_Line_3``), and an empty value becomes
``_``. The result can never add an MQTT level (``/``), a wildcard (``+``, ``#``), or a
character Kafka refuses in a topic name.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

from ..node.layout import CLASSIC, TableLayout

# ``type`` is the sensor type (``temperature_vibration``, ``compressor``…); the others are
# identity fields every readings table has.
FIELDS: tuple[str, ...] = (
    "sensor_id",
    "location",
    "manufacturer",
    "model",
    "firmware_version",
    "type",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_TYPE = -1  # the position standing for the table's type, not a column of the row


class TemplateError(ValueError):
    """The topic text names an unknown field or has unbalanced braces."""


def safe(value: object) -> str:
    """A field value as it appears in a topic (the documented rule above)."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub("_", text) or "_"


class TopicTemplate:
    """A topic, possibly with ``{field}`` placeholders filled from each reading."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.literal_parts: list[str] = []
        self.fields: list[str] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(f"topic {text!r}: {exc}") from None
        for literal, name, spec, conversion in parsed:
            self.literal_parts.append(literal)
            if name is None:
                continue
            if name not in FIELDS or spec or conversion:
                raise TemplateError(
                    f"topic {text!r}: unknown field {{{name}}} (fields: "
                    + ", ".join(f"{{{f}}}" for f in FIELDS)
                    + ")"
                )
            self.fields.append(name)
        self._positions: dict[TableLayout, list[int]] = {}
        self._cache: dict[tuple[Any, ...], str] = {}

    @property
    def templated(self) -> bool:
        return bool(self.fields)

    def literal(self) -> str:
        """The fixed text of the topic, without its placeholders (for validation)."""
        return "".join(self.literal_parts)

    def _positions_in(self, layout: TableLayout) -> list[int]:
        """Where each field sits in a stored row ``(id, *layout.names)``."""
        found = self._positions.get(layout)
        if found is None:
            names = layout.names
            found = [_TYPE if f == "type" else 1 + names.index(f) for f in self.fields]
            self._positions[layout] = found
        return found

    def render(self, row: tuple[Any, ...], layout: TableLayout = CLASSIC) -> str:
        """The topic of one stored row ``(id, *layout.names)`` of ``layout``'s table."""
        if not self.fields:
            return self.text
        values = tuple(
            layout.type_name if p == _TYPE else row[p] for p in self._positions_in(layout)
        )
        topic = self._cache.get(values)
        if topic is None:
            safe_values = {name: safe(v) for name, v in zip(self.fields, values, strict=True)}
            topic = self._cache[values] = self.text.format(**safe_values)
        return topic

    def topics(self, rows: Iterable[tuple[Any, ...]], layout: TableLayout = CLASSIC) -> list[str]:
        """The topic of every row of ``layout``'s table, in order."""
        return [self.render(row, layout) for row in rows]
