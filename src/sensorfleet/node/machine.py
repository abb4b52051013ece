"""An equipment identity's reading stream: its model's simulator on the node's schedule.

``EquipmentGenerator`` is the second kind of ``ReadingStream`` beside the classic
sensor: the schedule, look-ahead and rewind are the stream's, the values and the
ground truth come from ``equipment.EquipmentSimulator``. ``MachineBlock`` is what it
produces: rows for the model's ``<type>_readings`` table in its layout's column
order, and, when the labels are hidden, the ground truth for the truth file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ..equipment import Catalogue, EquipmentBlock, EquipmentModel, EquipmentSimulator
from .config import Config
from .generator import identity_labels, stream_seed
from .identity import Identity
from .layout import TableLayout, equipment_layout
from .profiles import Behaviour, behaviour_of
from .readings import Labels, Row
from .stamps import iso_utc
from .stream import MICROS, ReadingStream


@dataclass(frozen=True)
class MachineSettings:
    """Everything that shapes one machine's stream, resolved once per (re)configuration."""

    config: Config
    identity: Identity
    model: EquipmentModel
    behaviour: Behaviour
    layout: TableLayout

    @classmethod
    def resolve(cls, config: Config, identity: Identity, catalogue: Catalogue) -> MachineSettings:
        model = catalogue.get(identity.type, where=f"sensor {identity.id}: type")
        return cls(
            config,
            identity,
            model,
            behaviour_of(config.profiles, identity),
            layout_of(model, config.labels.mode == "inline"),
        )

    @property
    def interval_seconds(self) -> float:
        """The model's own interval, unless a reading rate was given (flag, environment or
        file), which then wins as it does for the classic sensor."""
        simulation = self.config.simulation
        if simulation.rate_given:
            return 1.0 / simulation.readings_per_second
        return self.model.interval_seconds

    @property
    def rate_multiplier(self) -> float:
        """Fault onsets scale with the identity's profiles, as classic anomalies do."""
        return self.behaviour.probability_multiplier

    @property
    def labels(self) -> Labels:
        return identity_labels(self.identity)

    def utc_offset_hours(self, epoch: float) -> float:
        """The identity's time zone offset in force at ``epoch`` (the simulation keeps it)."""
        offset = datetime.fromtimestamp(epoch, ZoneInfo(self.identity.timezone)).utcoffset()
        return offset.total_seconds() / 3600 if offset is not None else 0.0

    def changes_simulation(self, other: MachineSettings) -> bool:
        """Whether moving from ``other`` to these settings changes the simulation: the
        model's definition, the onset multiplier or the time zone."""
        return (
            self.model.spec != other.model.spec
            or self.rate_multiplier != other.rate_multiplier
            or self.identity.timezone != other.identity.timezone
        )


def layout_of(model: EquipmentModel, labels_inline: bool) -> TableLayout:
    """The ``<type>_readings`` layout of ``model``."""
    return equipment_layout(model.name, model.channels, labels_inline)


def _names_or_null(names: Sequence[str]) -> npt.NDArray[np.object_]:
    # Code -1 (none) indexes the last element: None, which SQLite stores as NULL.
    return np.array([*names, None], dtype=object)


Convert = Callable[[npt.NDArray[Any]], npt.NDArray[Any] | list[Any]]


def _listed(column: npt.NDArray[Any], convert: Convert = lambda values: values) -> list[Any]:
    """A block's column as Python values, ``convert``ed, one per reading."""
    converted = convert(column)
    return converted.tolist() if isinstance(converted, np.ndarray) else converted


def _values(column: npt.NDArray[Any], convert: Convert = lambda values: values) -> Iterable[Any]:
    """``_listed``, or its one value repeated when every reading holds the same bits (NaN
    included)."""
    bits = column.view(np.int64) if column.dtype == np.float64 else column
    if len(column) and (bits == bits[0]).all():
        return repeat(_listed(column[:1], convert)[0])
    return _listed(column, convert)


def _started_texts(started_us: npt.NDArray[np.int64]) -> list[Any]:
    """A fault's start as UTC text per reading, None without one (-1).

    A block holds a few distinct starts, one per episode, so each is formatted once
    and spread by index: formatting every reading's copy cost as much as the timestamps.
    """
    starts, where = np.unique(started_us, return_inverse=True)
    texts = np.array(iso_utc(np.maximum(starts, 0)), dtype=object)
    texts[starts < 0] = None
    return list(texts[where].tolist())


@dataclass
class MachineBlock:
    """Consecutive readings of one machine, with their ground truth."""

    first_index: int
    times_us: npt.NDArray[np.int64]
    data: EquipmentBlock
    labels: Labels
    layout: TableLayout
    model: EquipmentModel
    keep: None = None  # every reading makes a row (a dropout is a NULL channel)

    def __len__(self) -> int:
        return int(self.times_us.shape[0])

    @property
    def row_count(self) -> int:
        return len(self)

    @property
    def labels_inline(self) -> bool:
        return bool(self.layout.with_role("label"))

    def anomaly_counts(self) -> dict[str, int]:
        """Classic anomaly types: a machine has none (its faults are in the labels)."""
        return {}

    def slice(self, start: int, stop: int) -> MachineBlock:
        return MachineBlock(
            self.first_index + start,
            self.times_us[start:stop],
            self.data.slice(start, stop),
            self.labels,
            self.layout,
            self.model,
        )

    @classmethod
    def concat(cls, blocks: list[MachineBlock]) -> MachineBlock:
        last = blocks[-1]
        return cls(
            blocks[0].first_index,
            np.concatenate([b.times_us for b in blocks]),
            EquipmentBlock.concat([b.data for b in blocks]),
            last.labels,
            last.layout,
            last.model,
        )

    def truth_columns(self) -> list[list[Any]]:
        """The ground truth, one list per label column in ``layout.LABEL_COLUMNS`` order."""
        return self._truth(_listed)

    def _truth_for_rows(self) -> list[Iterable[Any]]:
        """``truth_columns`` for zipping into rows: a column that holds one value all
        through the block (most of a healthy machine's labels) repeats it instead of
        making a Python object per reading."""
        return self._truth(_values)

    def _truth(self, column: Callable[..., Any]) -> list[Any]:
        """Each label column as ``column(codes or values, convert)`` makes it."""
        data, model = self.data, self.model
        faults = _names_or_null(model.faults)

        def names(codes: npt.NDArray[Any]) -> npt.NDArray[Any]:
            named: npt.NDArray[Any] = faults[codes]
            return named

        return [
            column(data.state, lambda codes: np.array(model.states, dtype=object)[codes]),
            column(data.fault, names),
            column(data.fault_severity),
            column(data.fault_started_us, _started_texts),
            column(data.instrument_fault, names),
            column(data.health),
            column(data.rul_seconds),  # NaN binds as NULL
            column(data.maintenance.astype(np.int64)),
        ]

    def iter_rows(self) -> Iterator[Row]:
        """Rows in the layout's column order (NaN binds as NULL)."""
        labels = self.labels
        channels = [self.data.channels[c.name].tolist() for c in self.layout.channels]
        truth = self._truth_for_rows() if self.labels_inline else []
        return iter(
            zip(
                iso_utc(self.times_us),
                repeat(labels.sensor_id),
                *channels,
                *truth,
                repeat(labels.firmware_version),
                repeat(labels.model),
                repeat(labels.manufacturer),
                repeat(labels.location),
                strict=False,
            )
        )

    def rows(self) -> list[Row]:
        return list(self.iter_rows())

    def truth_rows(self) -> Iterator[Row] | None:
        """With hidden labels, ``(sensor_id, timestamp, *labels)`` per reading for the truth
        file; None when the rows carry them."""
        if self.labels_inline:
            return None
        return iter(
            zip(
                repeat(self.labels.sensor_id),
                iso_utc(self.times_us),
                *self._truth_for_rows(),
                strict=False,
            )
        )


@dataclass(frozen=True)
class MachineView:
    """A machine's latest served reading as the edges see it: copied values only."""

    type: str
    table: str
    timestamp: str
    state: str
    fault: str | None
    fault_severity: float
    fault_started_at: str | None
    instrument_fault: str | None
    health: float
    rul_seconds: float | None
    maintenance: bool
    channels: dict[str, float | None]
    faults: tuple[str, ...]


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN → None


class EquipmentGenerator(ReadingStream[MachineBlock]):
    """Produces the readings of one machine, block by block."""

    def __init__(self, settings: MachineSettings, seed: int, start_epoch: float) -> None:
        super().__init__(start_epoch)
        self.settings = settings
        self.seed = seed
        self._generation = 0  # fresh simulations started by reconfiguration
        self._sim = self._simulator(start_epoch)
        self._last: MachineBlock | None = None  # the latest served reading

    def _simulator(self, start_epoch: float) -> EquipmentSimulator:
        settings = self.settings
        base = stream_seed(self.seed, settings.identity.id)
        # A restarted machine draws from other streams than the first one did.
        seed = base
        if self._generation:
            seed = np.random.SeedSequence(base.entropy, spawn_key=(self._generation,))
        # A fixed offset, the one in force when the simulation starts.
        offset = datetime.fromtimestamp(
            start_epoch, ZoneInfo(settings.identity.timezone)
        ).utcoffset()
        return EquipmentSimulator(
            settings.model,
            seed,
            start_epoch,
            settings.interval_seconds,
            rate_multiplier=settings.rate_multiplier,
            utc_offset_hours=offset.total_seconds() / 3600 if offset is not None else 0.0,
        )

    @property
    def readings_per_second(self) -> float:
        return 1.0 / self._sim.interval

    @property
    def _period_us(self) -> float:
        # The simulator's own period, so the rows' times are the ones it simulated.
        return self._sim.interval * MICROS

    def _produce(self, count: int) -> MachineBlock:
        first = self._produced
        settings = self.settings
        data = self._sim.generate(count)
        self._produced = first + count
        return MachineBlock(
            first,
            self._times_us(first, count),
            data,
            settings.labels,
            settings.layout,
            settings.model,
        )

    def _state(self) -> object:
        return self._sim.snapshot()

    def _restore(self, state: object) -> None:
        self._sim.restore(state)

    def _concat(self, parts: list[MachineBlock]) -> MachineBlock:
        return MachineBlock.concat(parts)

    def generate(self, count: int) -> MachineBlock:
        block = super().generate(count)
        if len(block):
            self._last = block.slice(len(block) - 1, len(block))
        return block

    # ---- changing the stream from the next reading on ---------------------------------
    def reconfigure(self, settings: MachineSettings) -> None:
        """Use ``settings`` from the next reading on. New identity fields only relabel the
        rows; a changed model definition, onset multiplier or time zone carries the machine
        over (its state, fault and health stay). A new reading interval, or a model with
        other states, channels or faults, is another machine: a fresh simulation starts at
        the next reading, on the same schedule phase."""
        self._rewind()
        previous, self.settings = self.settings, settings
        now = self.time_of(self.next_index)
        if settings.interval_seconds == previous.interval_seconds:
            if not settings.changes_simulation(previous):
                return
            try:
                self._sim.reconfigure(
                    settings.model, settings.rate_multiplier, settings.utc_offset_hours(now)
                )
                return
            except ValueError:
                pass  # other states, channels or faults: a new machine below
        self._rebase()
        self._generation += 1
        self._sim = self._simulator(now)

    def force_fault(
        self, name: str, severity: float = 1.0, duration_seconds: float | None = None
    ) -> None:
        """Start fault ``name`` at the next reading; ``KeyError`` for a fault the model lacks."""
        if name not in self.settings.model.faults:
            raise KeyError(name)
        self._rewind()
        self._sim.force_fault(name, severity, duration_seconds)

    def end_fault(self) -> tuple[str, ...]:
        """End the active faults from the next reading on; return their names."""
        self._rewind()
        return self._sim.end_fault()

    def start_maintenance(self, duration_seconds: float | None = None) -> None:
        """Service the machine from the next reading on."""
        self._rewind()
        self._sim.start_maintenance(duration_seconds)

    def view(self) -> MachineView | None:
        """The latest served reading (None before the first)."""
        last = self._last
        if last is None:
            return None
        data = last.data
        state, fault, severity, started, instrument, health, rul, maintenance = (
            column[0] for column in last.truth_columns()
        )
        return MachineView(
            type=last.model.name,
            table=last.layout.table,
            timestamp=iso_utc(last.times_us)[0],
            state=state,
            fault=fault,
            fault_severity=float(severity),
            fault_started_at=started,
            instrument_fault=instrument,
            health=float(health),
            rul_seconds=_finite(float(rul)),
            maintenance=bool(maintenance),
            channels={name: _finite(float(values[0])) for name, values in data.channels.items()},
            faults=last.model.faults,
        )
