"""One machine's reading stream: events → segments → vectorised blocks with ground truth.

``EquipmentSimulator.generate(count)`` returns the next ``count`` readings,
scheduled exactly ``interval_seconds`` apart from ``start_epoch``. The same
model, seed and commands give the same values however the caller splits the
readings into blocks: events are drawn in time order, never per block, and
per-reading noise comes from one stream per channel (a draw of n then m equals
a draw of n + m). Streams are derived from the seed by name, so adding a
channel or a fault to a model leaves every other stream where it was.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .calendar import Calendar
from .catalogue import EquipmentModel
from .channels import Channels, Labels, SavedChannels
from .degradation import health, progress, step_progress
from .segments import Columns, InstrumentFault, MachineFault, SavedTimeline
from .timeline import Timeline

MICROS = 1_000_000
TIMELINE_STREAMS = ("states", "faults", "maintenance", "instruments")
FloatArray = npt.NDArray[np.float64]


def named_stream(seed: np.random.SeedSequence, *names: str) -> np.random.Generator:
    """A generator for ``names`` under ``seed``: the same names, the same stream."""
    digest = hashlib.blake2b("/".join(("equipment", *names)).encode(), digest_size=8).digest()
    words = (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little"))
    child = np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *words))
    return np.random.default_rng(child)


def _fault_columns(fault: MachineFault | None) -> tuple[float, ...]:
    """A machine fault's label columns: index, onset, course, severity, trip time."""
    if fault is None:
        return (-1, math.nan, math.nan, 0.0, math.inf)
    tripped = math.inf if fault.tripped_at is None else fault.tripped_at
    return (fault.index, fault.onset, fault.course, fault.severity, tripped)


def _instrument_columns(instrument: InstrumentFault | None) -> tuple[float, ...]:
    """An instrument fault's label columns: index, onset, severity."""
    if instrument is None:
        return (-1, math.nan, 0.0)
    return (instrument.index, instrument.onset, instrument.severity)


def _episode_columns(
    episodes: list[Any], columns: Callable[[Any], tuple[float, ...]], width: int
) -> FloatArray:
    """``columns`` of each episode, as rows; single segments of one episode share it, so
    each is turned into its columns once."""
    ids = np.fromiter(map(id, episodes), dtype=np.int64, count=len(episodes))
    _, first, where = np.unique(ids, return_index=True, return_inverse=True)
    rows = [columns(episodes[at]) for at in first.tolist()]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    return table[where]


@dataclass
class EquipmentBlock:
    """Consecutive readings of one machine, with the ground truth of every row."""

    first_index: int
    timestamps_us: npt.NDArray[np.int64]
    channels: dict[str, FloatArray]  # NaN: no reading (an instrument dropout)
    state: npt.NDArray[np.int8]  # codes into model.states
    fault: npt.NDArray[np.int16]  # machine fault, codes into model.faults, -1 none
    instrument_fault: npt.NDArray[np.int16]  # codes into model.faults, -1 none
    fault_severity: FloatArray  # 0-1
    fault_started_us: npt.NDArray[np.int64]  # -1 none
    health: FloatArray  # 1 healthy … failure threshold at the trip
    rul_seconds: FloatArray  # NaN: null (healthy, or a fault that never trips)
    maintenance: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.timestamps_us)

    def slice(self, lo: int, hi: int) -> EquipmentBlock:
        """Readings ``lo``..``hi`` of this block (local indexes)."""
        fields = {k: v[lo:hi] for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        channels = {k: v[lo:hi] for k, v in self.channels.items()}
        return EquipmentBlock(self.first_index + lo, channels=channels, **fields)

    @classmethod
    def concat(cls, parts: Sequence[EquipmentBlock]) -> EquipmentBlock:
        """Consecutive blocks as one."""
        first = parts[0]
        fields = {
            k: np.concatenate([vars(p)[k] for p in parts])
            for k, v in vars(first).items()
            if isinstance(v, np.ndarray)
        }
        channels = {k: np.concatenate([p.channels[k] for p in parts]) for k in first.channels}
        return cls(first.first_index, channels=channels, **fields)


@dataclass(frozen=True)
class Snapshot:
    """A simulator's changing state at one reading."""

    next_index: int
    timeline: SavedTimeline
    channels: SavedChannels


class EquipmentSimulator:
    """Produces the readings of one machine of one equipment type, block by block."""

    def __init__(
        self,
        model: EquipmentModel,
        seed: np.random.SeedSequence,
        start_epoch: float,
        interval_seconds: float,
        rate_multiplier: float = 1.0,
        utc_offset_hours: float = 0.0,
    ) -> None:
        if not interval_seconds > 0:
            raise ValueError(f"interval_seconds must be positive (got {interval_seconds})")
        self.model = model
        self.interval = float(interval_seconds)
        self.origin_epoch = start_epoch
        self._origin_us = round(start_epoch * MICROS)
        self._period_us = self.interval * MICROS
        self.next_index = 0
        self._seed = seed
        self.rate_multiplier = rate_multiplier
        self.utc_offset_hours = utc_offset_hours
        spec = model.spec
        self.calendar = Calendar(spec.schedule, spec.climate, utc_offset_hours)
        streams = {name: named_stream(seed, "timeline", name) for name in TIMELINE_STREAMS}
        self.timeline = Timeline(model, self.calendar, start_epoch, streams, rate_multiplier)
        noise = {name: named_stream(seed, "noise", name) for name in spec.channels}
        self.channels = Channels(model, noise, self._burst_streams(model, {}))

    def _burst_streams(
        self, model: EquipmentModel, have: dict[tuple[str, str], np.random.Generator]
    ) -> dict[tuple[str, str], np.random.Generator]:
        """One stream per intermittent effect, keeping the ones already running."""
        return {
            (fault, channel): have.get((fault, channel))
            or named_stream(self._seed, "bursts", fault, channel)
            for fault, fault_spec in model.spec.faults.items()
            for channel, effect in fault_spec.effects.items()
            if effect.bursts is not None
        }

    def reconfigure(
        self,
        model: EquipmentModel,
        rate_multiplier: float | None = None,
        utc_offset_hours: float | None = None,
    ) -> None:
        """Run ``model`` (a reloaded catalogue's version of this type) from the next reading.

        The machine keeps its state, its fault and its history; only the figures change.
        A model with other states, channels or faults is a different machine: that raises
        ``ValueError``, and the caller starts a new simulator.
        """
        old = self.model
        same = (
            model.states == old.states
            and model.faults == old.faults
            and [(c.name, c.kind) for c in model.channels]
            == [(c.name, c.kind) for c in old.channels]
        )
        if not same:
            raise ValueError(
                f"{model.name}: states, channels or faults changed; start a new simulator"
            )
        self.timeline.cut(self._relative(self.next_index))
        if rate_multiplier is not None:
            self.rate_multiplier = rate_multiplier
        if utc_offset_hours is not None:
            self.utc_offset_hours = utc_offset_hours
        self.model = model
        self.calendar = Calendar(model.spec.schedule, model.spec.climate, self.utc_offset_hours)
        self.timeline.reconfigure(model, self.calendar, self.rate_multiplier)
        carried = self.channels
        self.channels = Channels(
            model,
            carried.noise,
            self._burst_streams(model, carried.bursts),
            carried.counters,
            carried.stuck,
        )
        # Segment start values are per channel, in the same order: they stay valid.

    # ---- the schedule -------------------------------------------------------------------
    def time_of(self, index: int) -> float:
        """Scheduled epoch seconds of reading ``index``."""
        return (self._origin_us + round(index * self._period_us)) / MICROS

    def _relative(self, index: int) -> float:
        return round(index * self._period_us) / MICROS

    # ---- commands (from the next reading on) --------------------------------------------
    def force_fault(
        self, name: str, severity: float = 1.0, duration_seconds: float | None = None
    ) -> None:
        """Start fault ``name`` (machine or instrument) at the next reading.

        A progressive fault's ``duration_seconds`` is its course to the failure
        threshold; a step or instrument fault's is how long it lasts. None takes a
        duration from the model's range (a step fault without one lasts until
        maintenance).
        """
        model = self.model
        if name not in model.faults:
            known = ", ".join(model.faults)
            raise ValueError(f"{model.name} has no fault {name!r} (its faults: {known})")
        self.timeline.cut(self._relative(self.next_index))
        if name in model.machine_faults:
            self.timeline.start_fault(model.machine_faults.index(name), severity, duration_seconds)
        else:
            self.timeline.start_instrument_fault(
                model.instrument_faults.index(name), severity, duration_seconds
            )

    def end_fault(self, name: str | None = None) -> tuple[str, ...]:
        """End the machine and instrument faults (or only ``name``); return what ended."""
        timeline, model = self.timeline, self.model
        timeline.cut(self._relative(self.next_index))
        ended = []
        if timeline.fault is not None:
            fault = model.machine_faults[timeline.fault.index]
            if name in (None, fault):
                timeline.end_fault()
                ended.append(fault)
        if timeline.instrument is not None:
            instrument = model.instrument_faults[timeline.instrument.index]
            if name in (None, instrument):
                timeline.end_instrument_fault()
                ended.append(instrument)
        return tuple(ended)

    def start_maintenance(self, duration_seconds: float | None = None) -> None:
        """Service the machine from the next reading (length drawn from the model when None)."""
        self.timeline.cut(self._relative(self.next_index))
        self.timeline.start_maintenance(duration_seconds)

    # ---- snapshots for the live look-ahead rewind ---------------------------------------
    def snapshot(self) -> Snapshot:
        """Everything that changes as readings are produced, copied."""
        return Snapshot(self.next_index, self.timeline.save(), self.channels.save())

    def restore(self, snapshot: object) -> None:
        """Go back to a ``snapshot`` (which stays usable for another restore).

        A snapshot belongs to the configuration it was taken under: rewind before
        ``reconfigure``, as the classic generator does. Typed ``object`` so callers can
        hold snapshots of either kind of stream behind one interface.
        """
        if not isinstance(snapshot, Snapshot):
            raise TypeError(f"not an equipment snapshot: {type(snapshot).__name__}")
        self.next_index = snapshot.next_index
        self.timeline.load(snapshot.timeline)
        self.channels.load(snapshot.channels)

    # ---- producing ------------------------------------------------------------------------
    def generate(self, count: int) -> EquipmentBlock:
        """The next ``count`` readings."""
        first = self.next_index
        if count <= 0:
            return self._empty(first)
        steps = np.arange(first, first + count, dtype=np.float64)
        offsets_us = np.rint(steps * self._period_us).astype(np.int64)
        t = offsets_us / MICROS
        timeline = self.timeline
        timeline.extend(float(t[-1]))
        columns = timeline.segments.columns()
        labels = self._labels(t, columns)
        times = self.calendar.times(self.origin_epoch + t)
        _, reported = self.channels.fill(
            t, times, timeline.segments, columns, labels, self.interval
        )
        timeline.drop_before(float(t[-1]))
        self.next_index = first + count
        return self._block(first, offsets_us, reported, labels)

    def _empty(self, first: int) -> EquipmentBlock:
        def none(dtype: type[np.generic]) -> npt.NDArray[Any]:
            return np.zeros(0, dtype=dtype)

        return EquipmentBlock(
            first_index=first,
            timestamps_us=none(np.int64),
            channels={channel.name: none(np.float64) for channel in self.model.channels},
            state=none(np.int8),
            fault=none(np.int16),
            instrument_fault=none(np.int16),
            fault_severity=none(np.float64),
            fault_started_us=none(np.int64),
            health=none(np.float64),
            rul_seconds=none(np.float64),
            maintenance=none(np.int8),
        )

    def _labels(self, t: FloatArray, columns: Columns) -> Labels:
        which = np.maximum(np.searchsorted(columns.start, t, side="right") - 1, 0)
        piece = columns.piece[which]
        fault_table = _episode_columns(columns.faults, _fault_columns, 5)[piece]
        instrument_table = _episode_columns(columns.instruments, _instrument_columns, 3)[piece]
        state = columns.state[which]
        state_start, state_end = columns.state_start[which], columns.state_end[which]
        fault = fault_table[:, 0].astype(np.int64)
        onset, course, severity, tripped = (fault_table[:, i] for i in range(1, 5))
        since = t - onset
        tau = np.minimum(t, tripped) - onset  # progress stops when the machine trips
        fault_severity = np.zeros(len(t))
        progressed = np.zeros(len(t))
        for index, spec in enumerate(self.model.spec.faults.values()):
            hit = fault == index
            if not hit.any():
                continue
            if spec.progression == "step":
                progressed[hit] = step_progress(severity[hit], spec.trips)
                fault_severity[hit] = severity[hit]
            else:
                curve = progress(spec.progression, tau[hit], course[hit], spec.growth)
                progressed[hit] = curve
                fault_severity[hit] = severity[hit] * curve
        span = state_end - state_start
        with np.errstate(invalid="ignore", divide="ignore"):
            phase = np.where(np.isfinite(span) & (span > 0), (t - state_start) / span, 0.0)
        return Labels(
            segment=which,
            state=state,
            fault=fault,
            onset=onset,
            tau=tau,
            since=since,
            course=course,
            severity=severity,
            fault_severity=fault_severity,
            health=np.asarray(health(progressed, self.model.spec.failure_threshold)),
            instrument=instrument_table[:, 0].astype(np.int64),
            instrument_onset=instrument_table[:, 1],
            instrument_severity=instrument_table[:, 2],
            phase=np.clip(phase, 0.0, 1.0),
            demand=columns.demand[which],
        )

    def _block(
        self,
        first: int,
        offsets_us: npt.NDArray[np.int64],
        reported: dict[str, FloatArray],
        labels: Labels,
    ) -> EquipmentBlock:
        model = self.model
        fault = labels.fault
        has_fault = fault >= 0
        onset = np.where(has_fault, labels.onset, 0.0)
        onset_us = np.where(has_fault, self._origin_us + np.rint(onset * MICROS), -1)
        rul = np.full(len(fault), math.nan)
        tripped = labels.state == model.states.index("fault")
        for index, spec in enumerate(model.spec.faults.values()):
            hit = fault == index
            if not hit.any():
                continue
            if spec.progression == "step":
                rul[hit & tripped] = 0.0
            else:
                rul[hit] = np.maximum(labels.course[hit] - labels.tau[hit], 0.0)
        n_machine = len(model.machine_faults)
        instrument = np.where(labels.instrument >= 0, labels.instrument + n_machine, -1)
        return EquipmentBlock(
            first_index=first,
            timestamps_us=self._origin_us + offsets_us,
            channels=reported,
            state=labels.state.astype(np.int8),
            fault=fault.astype(np.int16),
            instrument_fault=instrument.astype(np.int16),
            fault_severity=labels.fault_severity,
            fault_started_us=onset_us.astype(np.int64),
            health=labels.health,
            rul_seconds=rul,
            maintenance=(labels.state == model.states.index("maintenance")).astype(np.int8),
        )
