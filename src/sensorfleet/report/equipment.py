"""The report's equipment part: fault onsets observed against the catalogue, state shares
and energy per state, for every ``<type>_readings`` table of the SQLite sources.

Expected onsets come from the same figures the simulator runs on: each machine fault's
``onset_per_hour`` in the catalogue (with the config's catalogue files), times the
identity's profile ``probability_multiplier``, over the hours the machine was at risk:
readings in an operating state with no fault in progress, each standing for its
sensor's reading interval. A forced fault (HTTP control) counts as observed but was not
expected. The interval around an observed count is the square-root (Anscombe) Poisson
interval at the report's per-comparison confidence.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..equipment import Catalogue, EquipmentModel, load_catalogue
from ..equipment.calendar import Calendar
from ..equipment.expected import busy_states, share_tolerance, state_shares
from ..equipment.schema import BUILTIN_STATES
from ..node.config import Config
from ..node.layout import CLASSIC
from ..node.profiles import resolve
from .dialect import POSTGRES, Dialect
from .model import ABOVE, BELOW, UNKNOWN, status_of
from .sources import database_errors, open_source
from .stats import z_value
from .table import ReportSource

# Fault-rate groupings: (row column, heading); "type" is the table's model.
FAULT_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("type", "model"),
    ("firmware_version", "firmware"),
    ("manufacturer", "manufacturer"),
    ("location", "location"),  # a site file's '<factory> - <line>'
)


@dataclass(frozen=True)
class FaultRow:
    """Machine fault onsets of one group: observed, with an interval, and expected."""

    dimension: str
    group: str
    sensors: int
    hours_at_risk: float
    onsets: int
    low: float
    high: float
    expected: float
    status: str


@dataclass(frozen=True)
class StateRow:
    """One operating state of a model: its share of readings and the energy drawn in it."""

    model: str
    state: str
    rows: int
    share: float
    energy_kwh: float | None  # None: the model has no kWh counter
    # Among the rows without a machine fault: the state's share, the catalogue's share at
    # those rows' production factors (None for fault and maintenance), how far the
    # observed share may stray, and the check.
    healthy_share: float | None = None
    expected: float | None = None
    tolerance: float | None = None
    status: str = UNKNOWN


@dataclass(frozen=True)
class ShiftRow:
    """A scheduled machine's busy share (cycle phases, or loaded) among its rows without a
    fault taken at one production factor (a shift, a weekend, a closed plant)."""

    model: str
    factor: float
    utc_offset_hours: float  # the time zone the rows fit best
    hours: float
    busy_share: float
    expected: float
    tolerance: float
    status: str


@dataclass(frozen=True)
class MachineEnergyRow:
    """One machine's energy per day beside the median of its model's machines: a leak or a
    worn part shows as one machine drawing more than its peers (a labelled fault is an
    expected event to the fault-rate check, so this is where its cost shows)."""

    model: str
    sensor_id: str
    location: str
    days: float
    kwh_per_day: float
    vs_model_median: float | None  # None when the model's median is 0


@dataclass
class _MachineEnergy:
    location: str = ""
    seconds: float = 0.0
    kwh: float = 0.0


# How far a busy share at one production factor may stray: cycles and load/unload turns
# last seconds, so an hour holds hundreds of them; factors seen for less are not checked.
SHIFT_TOLERANCE = 0.03
SHIFT_MIN_HOURS = 1.0


@dataclass(frozen=True)
class MachineSeries:
    """One machine's channels over time, in buckets (the HTML report plots each model's)."""

    model: str
    sensor_id: str
    source: str
    times: list[float]  # epoch seconds, the first reading of each bucket
    means: dict[str, list[float | None]]  # channel → mean per bucket
    units: dict[str, str]
    faults: list[tuple[float, float, str]]  # (start, end, fault) of each fault in view


@dataclass
class EquipmentReport:
    """What the equipment tables hold, for the renderers."""

    faults: list[FaultRow] = field(default_factory=list)
    states: list[StateRow] = field(default_factory=list)
    shifts: list[ShiftRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    series: list[MachineSeries] = field(default_factory=list)
    machines: list[MachineEnergyRow] = field(default_factory=list)  # most above median first

    def flagged(self) -> list[str]:
        """One line per fault rate whose interval excludes the expected count, per state
        whose share strays from the catalogue's by more than its tolerance, and per
        production factor whose busy share does."""
        return (
            [
                f"fault onsets of {dict(FAULT_DIMENSIONS)[r.dimension]} {r.group}: {r.onsets} "
                f"observed ({r.low:.1f}–{r.high:.1f}), {r.expected:.1f} expected"
                for r in self.faults
                if r.status in (ABOVE, BELOW)
            ]
            + [
                f"state {r.model} {r.state}: {r.healthy_share:.1%} of rows without a fault, "
                f"{r.expected:.1%} ± {r.tolerance:.1%} expected"
                for r in self.states
                if r.status in (ABOVE, BELOW)
                and None not in (r.healthy_share, r.expected, r.tolerance)
            ]
            + [
                f"busy share of {r.model} at production factor {r.factor:g}: {r.busy_share:.1%}, "
                f"{r.expected:.1%} ± {r.tolerance:.1%} expected"
                for r in self.shifts
                if r.status in (ABOVE, BELOW)
            ]
        )


def poisson_interval(count: int, z: float) -> tuple[float, float]:
    """Square-root (Anscombe) interval for the mean of a Poisson count."""
    root = math.sqrt(count + 3 / 8)
    low = max(0.0, root - z / 2) ** 2 - 3 / 8
    return max(0.0, low), (root + z / 2) ** 2 - 3 / 8


@dataclass
class _Group:
    sensors: set[str] = field(default_factory=set)
    hours: float = 0.0
    onsets: int = 0
    expected: float = 0.0


def equipment_tables(conn: Any, dialect: Dialect) -> list[str]:
    """``<type>_readings`` tables of a source (node file or central store) other than the
    classic one."""
    if dialect is POSTGRES:
        sql = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY 1"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
    names = [str(name) for (name,) in conn.execute(sql).fetchall()]
    return [n for n in names if n.endswith("_readings") and n != CLASSIC.table]


def _columns(conn: Any, dialect: Dialect, table: str) -> set[str]:
    if dialect is POSTGRES:
        found = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        ).fetchall()
        return {str(name) for (name,) in found}
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}


def _group_keys(
    type_name: str, firmware: object, maker: object, location: object
) -> list[tuple[str, str]]:
    """The (dimension, group) pairs a machine's hours and onsets count towards."""
    values = (type_name, firmware, maker, location)
    return [
        (dimension, str(value))
        for (dimension, _), value in zip(FAULT_DIMENSIONS, values, strict=True)
    ]


@dataclass
class _Shares:
    """Healthy rows by (model, state, minute of the week), and seconds of running per model."""

    rows: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))


FloatArray = npt.NDArray[np.float64]

# 1970-01-05 00:00 UTC, a Monday: minute m of the week is this plus m minutes.
_MONDAY_EPOCH = 4 * 86_400.0


def _minute_factors(model: EquipmentModel, minutes: Sequence[int]) -> npt.NDArray[np.float64]:
    """The model's production factor in each minute of the week (Monday 00:00 UTC is 0)."""
    calendar = Calendar(model.spec.schedule, model.spec.climate, 0.0)
    epochs = _MONDAY_EPOCH + 60.0 * np.array(minutes, dtype=np.float64) + 30.0
    return calendar.times(epochs).production


MINUTES_PER_WEEK = 7 * 1440


def _week(model: EquipmentModel, shares: _Shares) -> tuple[FloatArray, FloatArray]:
    """The model's rows without a fault, and those of them busy, in each UTC minute of the
    week."""
    rows, busy = np.zeros(MINUTES_PER_WEEK), np.zeros(MINUTES_PER_WEEK)
    scheduled = set(busy_states(model))
    for (name, state, minute), count in shares.rows.items():
        if name == model.name:
            rows[minute] += count
            if state in scheduled:
                busy[minute] += count
    return rows, busy


def _local_factors(
    model: EquipmentModel, rows: FloatArray, busy: FloatArray
) -> tuple[FloatArray, float]:
    """The production factor of each UTC minute of the week, and the machines' UTC offset
    in hours. The rows do not say which time zone their node kept, so for a machine that
    follows the schedule the offset (in quarter hours, −12 to +14 h) is the one under
    which its busy rows fit the schedule best, UTC on a tie; a dwell-time machine's shares
    do not depend on it (UTC)."""
    utc = _minute_factors(model, range(MINUTES_PER_WEEK))
    scheduled = busy_states(model)
    if not scheduled or not rows.any():
        return utc, 0.0
    busy_at = {
        float(f): sum(state_shares(model, [f]).get(s, 0.0) for s in scheduled)
        for f in np.unique(utc).tolist()
    }
    expected = np.array([busy_at[float(f)] for f in utc.tolist()])
    weight = 1.0 / np.maximum(rows, 1.0)
    best = min(
        range(-12 * 60, 14 * 60 + 1, 15),
        key=lambda k: (float(np.sum((busy - rows * np.roll(expected, -k)) ** 2 * weight)), abs(k)),
    )
    return np.roll(utc, -best), best / 60


def _shift_rows(
    model: EquipmentModel,
    shares: _Shares,
    rows: FloatArray,
    busy: FloatArray,
    factors: FloatArray,
    offset_hours: float,
) -> list[ShiftRow]:
    """The busy share at each production factor of a scheduled model, against the share
    the catalogue expects at that factor."""
    scheduled = busy_states(model)
    total = float(rows.sum())
    if not scheduled or not total:
        return []
    found = []
    for factor in np.unique(factors[rows > 0]).tolist():
        at = factors == factor
        count, busy_count = float(rows[at].sum()), float(busy[at].sum())
        hours = shares.seconds[model.name] * count / total / 3600
        if hours < SHIFT_MIN_HOURS:
            continue
        expected = state_shares(model, [factor])
        want = sum(expected.get(state, 0.0) for state in scheduled)
        observed = busy_count / count
        found.append(
            ShiftRow(
                model.name,
                float(factor),
                offset_hours,
                hours,
                observed,
                want,
                SHIFT_TOLERANCE,
                status_of(want, observed - SHIFT_TOLERANCE, observed + SHIFT_TOLERANCE),
            )
        )
    return found


def _expected_states(model: EquipmentModel, shares: _Shares) -> tuple[dict[str, float], float]:
    """The catalogue's healthy state shares at the production factors of the model's
    healthy rows, and the seconds its machines ran."""
    rows, busy = _week(model, shares)
    if not rows.any():
        return {}, 0.0
    factors, _ = _local_factors(model, rows, busy)
    seen = rows > 0
    return state_shares(model, factors[seen], rows[seen]), float(shares.seconds[model.name])


def _table_facts(
    conn: Any,
    dialect: Dialect,
    table: str,
    model: EquipmentModel,
    config: Config,
    groups: dict[tuple[str, str], _Group],
    states: Counter[tuple[str, str]],
    energy: defaultdict[tuple[str, str], float],
    shares: _Shares,
    machines: defaultdict[tuple[str, str], _MachineEnergy],
) -> None:
    operating = [s for s, on in zip(model.states, model.operating, strict=True) if on]
    marks = ", ".join("?" * len(operating))
    epoch, sql = dialect.epoch, dialect.sql
    spans = {
        sensor: (count, float(first), float(last))
        for sensor, count, first, last in conn.execute(
            f"SELECT sensor_id, count(*), min({epoch}), max({epoch}) FROM {table} "
            "GROUP BY sensor_id"
        ).fetchall()
    }
    onset_rate = sum(spec.onset_per_hour for spec in model.spec.faults.values())
    at_risk = conn.execute(
        sql(
            f"SELECT sensor_id, firmware_version, manufacturer, model, location, "
            f"sum(CASE WHEN fault IS NULL AND state IN ({marks}) THEN 1 ELSE 0 END) "
            f"FROM {table} GROUP BY 1, 2, 3, 4, 5"
        ),
        operating,
    ).fetchall()
    for sensor, firmware, maker, hardware, location, risky in at_risk:
        count, first, last = spans[sensor]
        interval = (last - first) / (count - 1) if count > 1 else model.interval_seconds
        hours = risky * interval / 3600
        multiplier = resolve(
            config.profiles,
            firmware_version=str(firmware),
            manufacturer=str(maker),
            model=str(hardware),
            location=str(location),
        ).probability_multiplier
        for key in _group_keys(model.name, firmware, maker, location):
            group = groups[key]
            group.sensors.add(sensor)
            group.hours += hours
            group.expected += hours * onset_rate * multiplier
    onsets = conn.execute(
        f"SELECT min(firmware_version), min(manufacturer), min(location) FROM {table} "
        "WHERE fault IS NOT NULL GROUP BY sensor_id, fault_started_at"
    ).fetchall()
    for firmware, maker, location in onsets:
        for key in _group_keys(model.name, firmware, maker, location):
            groups[key].onsets += 1
    by_state = conn.execute(f"SELECT state, count(*) FROM {table} GROUP BY state").fetchall()
    for state, rows in by_state:
        states[(model.name, str(state))] += int(rows)
    # Rows without a machine fault by state and minute of the week (UTC, the nodes'
    # default time zone): each minute's production factor gives the catalogue's shares.
    if dialect is POSTGRES:
        utc = """("timestamp" AT TIME ZONE 'UTC')"""
        weekday = f"CAST(EXTRACT(DOW FROM {utc}) AS INTEGER)"
        minute = f"CAST(EXTRACT(HOUR FROM {utc}) * 60 + EXTRACT(MINUTE FROM {utc}) AS INTEGER)"
    else:
        weekday = "CAST(strftime('%w', timestamp) AS INTEGER)"
        minute = (
            "CAST(strftime('%H', timestamp) AS INTEGER) * 60 "
            "+ CAST(strftime('%M', timestamp) AS INTEGER)"
        )
    healthy = conn.execute(
        sql(
            f"SELECT state, {weekday}, {minute}, count(*) FROM {table} "
            f"WHERE fault IS NULL AND state NOT IN ({', '.join('?' * len(BUILTIN_STATES))}) "
            "GROUP BY 1, 2, 3"
        ),
        BUILTIN_STATES,
    ).fetchall()
    for state, sunday_first, minute, rows in healthy:
        minute_of_week = ((int(sunday_first) + 6) % 7) * 1440 + int(minute)  # Monday 0
        shares.rows[(model.name, str(state), minute_of_week)] += int(rows)
    shares.seconds[model.name] += sum(
        (last - first) for count, first, last in spans.values() if count > 1
    )
    counter = next(
        (c.name for c in model.channels if c.kind == "counter" and c.unit == "kWh"), None
    )
    if counter is not None:
        drawn = conn.execute(
            # By timestamp, not id: a central store's rows have no node id.
            f"SELECT sensor_id, state, sum(d) FROM (SELECT sensor_id, state, {counter} - "
            f'lag({counter}) OVER (PARTITION BY sensor_id ORDER BY "timestamp") AS d '
            f"FROM {table}) AS steps WHERE d >= 0 GROUP BY sensor_id, state"
        ).fetchall()
        locations = {str(row[0]): str(row[4]) for row in at_risk}
        for sensor, state, kwh in drawn:
            energy[(model.name, str(state))] += float(kwh or 0.0)
            machine = machines[(model.name, str(sensor))]
            machine.location = locations.get(str(sensor), "")
            machine.kwh += float(kwh or 0.0)
        for sensor, (count, first, last) in spans.items():
            if count > 1 and (model.name, str(sensor)) in machines:
                machines[(model.name, str(sensor))].seconds += last - first


SERIES_BUCKETS = 300


def machine_series(
    conn: Any, dialect: Dialect, table: str, model: EquipmentModel, source: str
) -> MachineSeries | None:
    """The first machine of ``table`` over its whole run, every channel averaged into
    ``SERIES_BUCKETS`` buckets, with its faults as spans."""
    first = conn.execute(f"SELECT sensor_id FROM {table} ORDER BY sensor_id LIMIT 1").fetchone()
    if first is None:
        return None
    sensor = str(first[0])
    epoch, sql = dialect.epoch, dialect.sql
    low, high = conn.execute(
        sql(f"SELECT min({epoch}), max({epoch}) FROM {table} WHERE sensor_id = ?"), (sensor,)
    ).fetchone()
    width = max((float(high) - float(low)) / SERIES_BUCKETS, 1e-6)
    names = [channel.name for channel in model.channels]
    bucket = dialect.floor(f"({epoch} - ?) / ?")
    rows = conn.execute(
        sql(
            f"SELECT {bucket} AS b, min({epoch}), "
            + ", ".join(f"avg({name})" for name in names)
            + f" FROM {table} WHERE sensor_id = ? GROUP BY 1 ORDER BY 1"
        ),
        (float(low), width, sensor),
    ).fetchall()
    spans = conn.execute(
        sql(
            f"SELECT min({epoch}), max({epoch}), min(fault) FROM {table} "
            "WHERE sensor_id = ? AND fault IS NOT NULL GROUP BY fault_started_at ORDER BY 1"
        ),
        (sensor,),
    ).fetchall()
    return MachineSeries(
        model=model.name,
        sensor_id=sensor,
        source=source,
        times=[float(row[1]) for row in rows],
        means={
            name: [None if row[2 + i] is None else float(row[2 + i]) for row in rows]
            for i, name in enumerate(names)
        },
        units={channel.name: channel.unit for channel in model.channels},
        faults=[(float(a), float(b), str(fault)) for a, b, fault in spans],
    )


def read_equipment(
    sources: Sequence[ReportSource],
    config: Config,
    interval_confidence: float,
    plot: bool = False,
) -> EquipmentReport | None:
    """The equipment part of the report, or None when no source holds an equipment table.

    The catalogue (built in, with the config's ``equipment.catalogues``) is loaded only
    when a source has an equipment table. Node files, central SQLite files and PostgreSQL
    stores are read alike. ``plot`` also reads each model's channels over
    time (its first machine in the first source holding it)."""
    catalogue: Catalogue | None = None
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
    states: Counter[tuple[str, str]] = Counter()
    energy: defaultdict[tuple[str, str], float] = defaultdict(float)
    machines: defaultdict[tuple[str, str], _MachineEnergy] = defaultdict(_MachineEnergy)
    shares = _Shares()
    models: dict[str, EquipmentModel] = {}
    with_counter: set[str] = set()
    report = EquipmentReport()
    found = False
    for source in sources:
        dialect = source.dialect
        try:
            with open_source(source) as conn:
                for table in equipment_tables(conn, dialect):
                    type_name = table.removesuffix("_readings")
                    if catalogue is None:
                        catalogue = load_catalogue(config.equipment.catalogues)
                    if type_name not in catalogue.models:
                        report.notes.append(f"{source.label}: {table}: no model {type_name!r}")
                        continue
                    if "state" not in _columns(conn, dialect, table):
                        report.notes.append(
                            f"{source.label}: {table}: labels hidden (in the truth file), "
                            "so no fault rates or states"
                        )
                        continue
                    model = catalogue.get(type_name)
                    found = True
                    if any(c.kind == "counter" and c.unit == "kWh" for c in model.channels):
                        with_counter.add(model.name)
                    _table_facts(
                        conn, dialect, table, model, config, groups, states, energy, shares,
                        machines,
                    )  # fmt: skip
                    models[model.name] = model
                    plotted = {series.model for series in report.series}
                    if plot and model.name not in plotted:
                        series = machine_series(conn, dialect, table, model, source.label)
                        if series is not None:
                            report.series.append(series)
        except database_errors(source) as exc:
            report.notes.append(f"{source.label}: equipment tables not read ({exc})")
    if not found:
        return report if report.notes else None
    z = z_value(interval_confidence)
    for (dimension, group), facts in sorted(groups.items()):
        low, high = poisson_interval(facts.onsets, z)
        report.faults.append(
            FaultRow(
                dimension,
                group,
                len(facts.sensors),
                facts.hours,
                facts.onsets,
                low,
                high,
                facts.expected,
                status_of(facts.expected, low, high),
            )
        )
    totals: Counter[str] = Counter()
    for (model_name, _), rows in states.items():
        totals[model_name] += rows
    expected = {name: _expected_states(model, shares) for name, model in models.items()}
    healthy_rows: Counter[tuple[str, str]] = Counter()
    for (model_name, state, _), rows in shares.rows.items():
        healthy_rows[(model_name, state)] += rows
    healthy_totals: Counter[str] = Counter()
    for (model_name, _), rows in healthy_rows.items():
        healthy_totals[model_name] += rows
    for (model_name, state), rows in sorted(states.items()):
        row = StateRow(
            model_name,
            state,
            rows,
            rows / totals[model_name],
            energy.get((model_name, state), 0.0) if model_name in with_counter else None,
        )
        healthy_shares, seconds = expected[model_name]
        if state in healthy_shares and healthy_totals[model_name]:
            observed = healthy_rows[(model_name, state)] / healthy_totals[model_name]
            want = healthy_shares[state]
            allowed = share_tolerance(models[model_name], state, want, seconds)
            row = replace(
                row,
                healthy_share=observed,
                expected=want,
                tolerance=allowed,
                status=status_of(want, observed - allowed, observed + allowed),
            )
        report.states.append(row)
    report.machines = _machine_energy_rows(machines)
    for name in sorted(models):
        minutes, busy = _week(models[name], shares)
        factors, offset = _local_factors(models[name], minutes, busy)
        report.shifts.extend(_shift_rows(models[name], shares, minutes, busy, factors, offset))
    return report


def _machine_energy_rows(
    machines: dict[tuple[str, str], _MachineEnergy],
) -> list[MachineEnergyRow]:
    """Each machine's kWh per day against its model's median, the most above it first."""
    per_day = {
        key: machine.kwh / (machine.seconds / 86_400)
        for key, machine in machines.items()
        if machine.seconds > 0
    }
    medians = {
        model: float(np.median([v for (m, _), v in per_day.items() if m == model]))
        for model in {m for m, _ in per_day}
    }
    rows = [
        MachineEnergyRow(
            model,
            sensor,
            machines[(model, sensor)].location,
            machines[(model, sensor)].seconds / 86_400,
            value,
            value / medians[model] if medians[model] > 0 else None,
        )
        for (model, sensor), value in per_day.items()
    ]
    return sorted(rows, key=lambda r: (-(r.vs_model_median or 0.0), r.model, r.sensor_id))
