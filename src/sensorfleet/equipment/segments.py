"""What the event process hands to the channels: stretches of time with constant labels.

A ``Segment`` holds the machine's state, its fault episodes and, once the channels
have computed it, the value of every analog channel at the segment's start. Fault
episodes are fixed when they begin (a trip replaces the episode with its trip time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class MachineFault:
    """One episode of a machine fault, fixed at onset (``tripped_at`` set at the trip)."""

    index: int
    onset: float
    course: float  # progressive: seconds from onset to the failure threshold
    severity: float
    end: float  # a step fault that clears by itself; INFINITY otherwise
    tripped_at: float | None = None


@dataclass(frozen=True)
class InstrumentFault:
    """One episode of an instrument fault (``index`` counts from the first instrument fault)."""

    index: int
    onset: float
    severity: float
    end: float


@dataclass(slots=True)
class Segment:
    """A stretch of time with constant labels; ``x0`` is filled in by the channels."""

    start: float
    end: float
    state: int
    state_start: float
    state_end: float
    demand: float
    fault: MachineFault | None
    instrument: InstrumentFault | None
    x0: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True)
class SavedTimeline:
    """A timeline's changing state, to go back to."""

    values: dict[str, Any]
    segments: list[Segment]
    operator: dict[str, Any]
    streams: dict[str, Mapping[str, Any]]
