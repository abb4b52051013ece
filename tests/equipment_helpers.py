"""Shared set-up for the equipment tests: the built-in catalogue and a seeded simulator."""

from __future__ import annotations

import datetime
from functools import cache

import numpy as np

from sensorfleet.equipment import EquipmentModel, EquipmentSimulator, load_catalogue

# A Monday at midnight UTC, so a day's run holds the three shifts of a weekday.
MONDAY = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC).timestamp()


@cache
def model(name: str) -> EquipmentModel:
    return load_catalogue().get(name)


def simulator(
    name: str, seed: int = 42, rate_multiplier: float = 0.0, start: float = MONDAY
) -> EquipmentSimulator:
    """A simulator of the built-in ``name`` at its own interval (no random faults by default)."""
    spec = model(name)
    return EquipmentSimulator(
        spec, np.random.SeedSequence(seed), start, spec.interval_seconds, rate_multiplier
    )
