"""From counted cells to a report: group, compare with the config, attach intervals."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from ..node.profiles import ANOMALY_TYPES
from .aggregate import Cell, CellKey, IdentityFields, SourceSummary
from .expected import Expectation, Expectations
from .model import (
    DIMENSIONS,
    RateRow,
    Report,
    ShareRow,
    SourceRow,
    SyncRow,
    status_of,
)
from .stats import rate_effective_n, share_interval, wilson, z_value


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort "1.10" after "1.9" and "Line 10" after "Line 2"."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def _type_order(kind: str) -> tuple[int, str]:
    return (
        (ANOMALY_TYPES.index(kind), kind) if kind in ANOMALY_TYPES else (len(ANOMALY_TYPES), kind)
    )


class _Group:
    """Running totals for one group of cells."""

    def __init__(self) -> None:
        self.rows = 0
        self.flagged = 0
        self.synced = 0
        self.sensors: set[tuple[str, str]] = set()
        self.identities: dict[IdentityFields, int] = defaultdict(int)
        self.types: dict[str, list[int]] = {}  # type -> [rows, episodes]

    def add(self, key: CellKey, cell: Cell) -> None:
        self.rows += cell.rows
        self.synced += cell.synced
        self.sensors.add((key.origin, key.sensor_id))
        self.identities[key.identity] += cell.rows
        if key.flagged:
            self.flagged += cell.rows
            kind = key.anomaly_type or "(none)"
            counts = self.types.setdefault(kind, [0, 0])
            counts[0] += cell.rows
            counts[1] += cell.episodes

    def by_type(self) -> dict[str, tuple[int, int]]:
        return {kind: (rows, episodes) for kind, (rows, episodes) in self.types.items()}


def _dimension_value(key: CellKey, dimension: str) -> str:
    return str(getattr(key.identity, dimension))


def _share_types(group: _Group, expected: Expectation | None) -> list[str]:
    """Types observed in a group or expected in it, in the usual order."""
    if group.flagged == 0:
        return []
    kinds = set(group.types)
    if expected:
        kinds |= {k for k, share in expected.row_shares.items() if share > 0}
    return sorted(kinds, key=_type_order)


def count_comparisons(groups: dict[str, dict[str, _Group]], expectations: Expectations) -> int:
    """How many observed values will be checked against an expected one."""
    total = 0
    for by_name in groups.values():
        for group in by_name.values():
            expected = expectations.combine(group.identities.items())
            if expected is not None:
                total += 1 + len(_share_types(group, expected))
    return total


def _rates(
    groups: dict[str, _Group], expectations: Expectations, z: float
) -> tuple[list[RateRow], list[ShareRow]]:
    rates: list[RateRow] = []
    shares: list[ShareRow] = []
    for name in sorted(groups, key=natural_key):
        group = groups[name]
        expected = expectations.combine(group.identities.items())
        by_type = group.by_type()
        observed = group.flagged / group.rows if group.rows else 0.0
        n = rate_effective_n(
            group.rows, group.flagged, by_type, expected.length_ratio if expected else None
        )
        low, high = wilson(observed, n, z)
        rate_expected = expected.flag_rate if expected else None
        rates.append(
            RateRow(
                group=name,
                rows=group.rows,
                anomalies=group.flagged,
                sensors=len(group.sensors),
                observed=observed,
                low=low,
                high=high,
                expected=rate_expected,
                status=status_of(rate_expected, low, high),
            )
        )
        for kind in _share_types(group, expected):
            count = by_type.get(kind, (0, 0))[0]
            share = count / group.flagged
            low, high = share_interval(
                kind,
                by_type,
                z,
                expected.lengths if expected else {},
                expected.episode_shares if expected else {},
            )
            share_expected = expected.row_shares.get(kind, 0.0) if expected else None
            shares.append(
                ShareRow(
                    group=name,
                    anomaly_type=kind,
                    count=count,
                    observed=share,
                    low=low,
                    high=high,
                    expected=share_expected,
                    status=status_of(share_expected, low, high),
                )
            )
    return rates, shares


def _rate_notes(cells: Iterable[tuple[CellKey, Cell]], readings_per_second: float) -> list[str]:
    """A note when the data's reading rate is far from the one expected values assume."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    firsts: dict[tuple[str, str], str] = {}
    lasts: dict[tuple[str, str], str] = {}
    for key, cell in cells:
        sensor = (key.origin, key.sensor_id)
        counts[sensor] += cell.rows
        firsts[sensor] = min(firsts.get(sensor, cell.first), cell.first)
        lasts[sensor] = max(lasts.get(sensor, cell.last), cell.last)
    rates = []
    for sensor, rows in counts.items():
        try:
            seconds = (_parse(lasts[sensor]) - _parse(firsts[sensor])).total_seconds()
        except ValueError:
            continue
        if seconds > 0 and rows > 10:
            rates.append((rows - 1) / seconds)
    if not rates:
        return []
    median = sorted(rates)[len(rates) // 2]
    if 0.8 <= median / readings_per_second <= 1.25:
        return []
    return [
        f"the data has about {median:.3g} readings per second per sensor but expected type "
        f"shares assume {readings_per_second:g} (from the config); "
        f"pass --readings-per-second {median:.3g} if the nodes ran at that rate"
    ]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def build_report(
    summaries: list[SourceSummary],
    expectations: Expectations,
    *,
    expected_from: str,
    confidence: float,
) -> Report:
    """Group every cell by firmware, model, manufacturer and location and compare.

    ``confidence`` holds for the whole report at once (Bonferroni): with ``m``
    comparisons each interval is drawn at ``1 - (1 - confidence) / m``, so a
    correct configuration shows no flag in ``confidence`` of reports, however
    many groups there are.
    """
    cells = [(key, cell) for s in summaries for key, cell in s.cells.items()]
    groups: dict[str, dict[str, _Group]] = {d: defaultdict(_Group) for d, _ in DIMENSIONS}
    sensors: set[tuple[str, str]] = set()
    rows = flagged = 0
    first, last = "", ""
    for key, cell in cells:
        for dimension, _ in DIMENSIONS:
            groups[dimension][_dimension_value(key, dimension)].add(key, cell)
        sensors.add((key.origin, key.sensor_id))
        rows += cell.rows
        flagged += cell.rows if key.flagged else 0
        first = min(first, cell.first) if first else cell.first
        last = max(last, cell.last)
    comparisons = count_comparisons(groups, expectations)
    each = 1 - (1 - confidence) / max(1, comparisons)
    z = z_value(each)
    rates: dict[str, list[RateRow]] = {}
    shares: dict[str, list[ShareRow]] = {}
    for dimension, _ in DIMENSIONS:
        rates[dimension], shares[dimension] = _rates(groups[dimension], expectations, z)
    firmware = groups["firmware_version"]
    sync_by_firmware = [
        SyncRow(name, firmware[name].rows, firmware[name].synced)
        for name in sorted(firmware, key=natural_key)
    ]
    sources = [_source_row(s) for s in summaries]
    # Per source, everything the file holds (duplicates included): that is its sync state.
    sync_by_source = [
        SyncRow(s.label, s.rows + s.duplicates, s.synced + s.duplicates) for s in sources
    ]
    return Report(
        sources=sources,
        expected_from=expected_from,
        confidence=confidence,
        interval_confidence=each,
        readings_per_second=expectations.readings_per_second,
        rows=rows,
        anomalies=flagged,
        sensors=len(sensors),
        first=first,
        last=last,
        rates=rates,
        shares=shares,
        sync_by_firmware=sync_by_firmware,
        sync_by_source=sync_by_source,
        notes=[
            *_rate_notes(cells, expectations.readings_per_second),
            *_unknown_notes(expectations, expected_from),
        ],
    )


def _unknown_notes(expectations: Expectations, expected_from: str) -> list[str]:
    if not expectations.unknown:
        return []
    names = ", ".join(sorted(expectations.unknown))
    return [
        f"{names}: not in the profiles of {expected_from}; expected values treat them as "
        "neutral (multiplier 1), as the nodes did if they ran with this config"
    ]


def _source_row(summary: SourceSummary) -> SourceRow:
    cells = summary.cells
    firsts = [c.first for c in cells.values() if c.first]
    lasts = [c.last for c in cells.values() if c.last]
    return SourceRow(
        label=summary.source.label,
        kind=summary.source.kind,
        rows=summary.rows,
        synced=summary.synced,
        sensors=len({(k.origin, k.sensor_id) for k in cells}),
        first=min(firsts) if firsts else "",
        last=max(lasts) if lasts else "",
        duplicates=summary.duplicates,
    )
