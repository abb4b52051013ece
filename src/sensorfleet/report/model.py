"""The contents of a report, as plain frozen data every renderer reads.

Proportions are fractions (0.0712), never pre-rounded percentages, so a
renderer decides how to show them and a script reading JSON gets full precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .equipment import EquipmentReport

# Report groupings, as (row column, heading) pairs.
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("firmware_version", "firmware"),
    ("model", "model"),
    ("manufacturer", "manufacturer"),
    ("location", "location"),
)
DIMENSION_TITLES: dict[str, str] = dict(DIMENSIONS)

OK, ABOVE, BELOW, UNKNOWN = "ok", "above", "below", "n/a"


def status_of(expected: float | None, low: float, high: float) -> str:
    """``above``/``below`` when the observed interval lies above/below ``expected``."""
    if expected is None:
        return UNKNOWN
    if expected < low:
        return ABOVE
    if expected > high:
        return BELOW
    return OK


@dataclass(frozen=True)
class RateRow:
    """Anomaly rate of one group, observed and expected."""

    group: str
    rows: int
    anomalies: int
    sensors: int
    observed: float
    low: float
    high: float
    expected: float | None
    status: str


@dataclass(frozen=True)
class ShareRow:
    """Share of a group's anomalous rows that are of one type, observed and expected."""

    group: str
    anomaly_type: str
    count: int
    observed: float
    low: float
    high: float
    expected: float | None
    status: str


@dataclass(frozen=True)
class SyncRow:
    """Total, synced and unsynced rows of one group."""

    group: str
    total: int
    synced: int

    @property
    def unsynced(self) -> int:
        return self.total - self.synced

    @property
    def share(self) -> float:
        return self.synced / self.total if self.total else 0.0


@dataclass(frozen=True)
class SourceRow:
    """One database that was read."""

    label: str
    kind: str  # node or central
    rows: int  # rows counted in the report
    synced: int
    sensors: int
    first: str
    last: str
    duplicates: int = 0  # rows held here but counted from a node file instead


@dataclass(frozen=True)
class ObservedEpisode:
    """A run of flagged readings of one type, for shading a plot."""

    start: float  # epoch seconds
    end: float
    anomaly_type: str


@dataclass(frozen=True)
class SensorSeries:
    """A sensor's readings over a time window, bucketed for plotting.

    Arrays hold one value per bucket: the bucket's first time, then mean,
    min and max of each measurement (NaN when the bucket had only outages).
    """

    sensor_id: str
    source: str
    identity: str
    times: npt.NDArray[np.float64]
    mean: dict[str, npt.NDArray[np.float64]]
    low: dict[str, npt.NDArray[np.float64]]
    high: dict[str, npt.NDArray[np.float64]]
    episodes: list[ObservedEpisode]
    rows: int


@dataclass
class Report:
    """Everything a renderer shows."""

    sources: list[SourceRow]
    expected_from: str
    confidence: float  # for the whole report
    interval_confidence: float  # of each interval (Bonferroni-adjusted)
    readings_per_second: float
    rows: int
    anomalies: int
    sensors: int
    first: str
    last: str
    rates: dict[str, list[RateRow]]
    shares: dict[str, list[ShareRow]]
    sync_by_firmware: list[SyncRow]
    sync_by_source: list[SyncRow]
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    series: list[SensorSeries] = field(default_factory=list)
    # What each plotted series covers: the --window text ("6h"), or None for everything.
    series_window: str | None = None
    equipment: EquipmentReport | None = None  # when a source holds equipment tables

    def flagged(self) -> list[str]:
        """One line per observed value whose interval excludes the expected value."""
        lines = []
        for dimension, rows in self.rates.items():
            title = DIMENSION_TITLES[dimension]
            for rate in rows:
                if rate.status in (ABOVE, BELOW):
                    lines.append(
                        f"anomaly rate of {title} {rate.group}: {rate.observed:.2%} observed "
                        f"({rate.low:.2%}–{rate.high:.2%}), {rate.expected or 0:.2%} expected"
                    )
        for dimension, shares in self.shares.items():
            title = DIMENSION_TITLES[dimension]
            for share in shares:
                if share.status in (ABOVE, BELOW):
                    lines.append(
                        f"{share.anomaly_type} share of {title} {share.group}: "
                        f"{share.observed:.2%} observed ({share.low:.2%}–{share.high:.2%}), "
                        f"{share.expected or 0:.2%} expected"
                    )
        if self.equipment is not None:
            lines.extend(self.equipment.flagged())
        return lines

    def comparisons(self) -> int:
        """How many observed values were checked against an expected one."""
        checked = [r for rows in self.rates.values() for r in rows if r.expected is not None]
        shared = [s for rows in self.shares.values() for s in rows if s.expected is not None]
        machines = len(self.equipment.faults) if self.equipment is not None else 0
        return len(checked) + len(shared) + machines
