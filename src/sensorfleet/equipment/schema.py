"""The catalogue's schema: every key a catalogue file may hold, validated strictly.

These are the raw, validated forms of the YAML; ``catalogue`` compiles them into
the frozen ``EquipmentModel`` the simulator runs. An unknown key anywhere is an
error, as in config.yaml, and each rule's message says what was expected.
"""

from __future__ import annotations

import keyword
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

# The same strictness as config.yaml and the profiles: one base class serves all three.
from .._pydantic import Strict

# Names a formula can read besides the channels (see formula.py and docs/equipment.md).
RESERVED_NAMES: frozenset[str] = frozenset(
    {
        "production",
        "planned",
        "outdoor_temp_c",
        "hour",
        "weekday",
        "interval",
        "health",
        "phase",
        "demand",
        "capacity",
        "duty",
    }
)
DEMAND_VARIABLES: frozenset[str] = frozenset({"demand", "capacity", "duty"})  # demand models
BUILTIN_STATES: tuple[str, ...] = ("fault", "maintenance")
MAX_SECONDS = 10 * 365 * 86_400.0  # ten years: longer than any course a model needs
Finite = Annotated[float, Field(ge=-1e9, le=1e9)]
Share = Annotated[float, Field(ge=0, le=1)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
NonNegativeSeconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Rate = Annotated[float, Field(ge=0, le=3600)]  # at most one onset a second
# A state or phase shorter than this would cost more events than readings.
ShortSeconds = Annotated[float, Field(ge=0.1, le=MAX_SECONDS)]


def _name(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value) or not value.islower():
        raise ValueError(
            f"must be a lower-case name of letters, digits and underscores (got {value!r})"
        )
    return value


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if low > high:
        raise ValueError(f"must be [low, high] with low <= high (got [{low}, {high}])")
    return value


Name = Annotated[str, AfterValidator(_name)]
SecondsRange = Annotated[tuple[Seconds, Seconds], AfterValidator(_ordered)]
ShortRange = Annotated[tuple[ShortSeconds, ShortSeconds], AfterValidator(_ordered)]
SeverityRange = Annotated[tuple[Share, Share], AfterValidator(_ordered)]
Range = Annotated[tuple[Finite, Finite], AfterValidator(_ordered)]


class Shift(Strict):
    """A shift: local hours [start_hour, end_hour), wrapping midnight when end < start."""

    name: Name
    start_hour: Annotated[float, Field(ge=0, lt=24)]
    end_hour: Annotated[float, Field(ge=0, le=24)]
    factor: Share = 1.0


class Schedule(Strict):
    """When the plant produces and how hard: the production factor of every minute."""

    shifts: list[Shift] = Field(
        default_factory=lambda: [Shift(name="day", start_hour=0, end_hour=24, factor=1.0)]
    )
    weekend_factor: Share = 1.0  # multiplies the shift's factor on Saturdays and Sundays
    off_shift_factor: Share = 0.0  # hours no shift covers

    @field_validator("shifts")
    @classmethod
    def _disjoint(cls, shifts: list[Shift]) -> list[Shift]:
        covered = [False] * 1440
        for shift in shifts:
            for minute in _shift_minutes(shift):
                if covered[minute]:
                    raise ValueError(f"shift {shift.name!r} overlaps another shift")
                covered[minute] = True
        return shifts


def _shift_minutes(shift: Shift) -> list[int]:
    start, end = round(shift.start_hour * 60), round(shift.end_hour * 60)
    if end > start:
        return list(range(start, end))
    return [*range(start, 1440), *range(0, end)]


class Climate(Strict):
    """Outdoor temperature: an annual and a daily cosine around a mean."""

    mean_c: Annotated[float, Field(ge=-60, le=60)] = 10.0
    seasonal_amplitude_c: Annotated[float, Field(ge=0, le=40)] = 10.0
    warmest_day: Annotated[float, Field(ge=0, le=366)] = 200.0  # day of the year
    daily_amplitude_c: Annotated[float, Field(ge=0, le=20)] = 5.0
    warmest_hour: Annotated[float, Field(ge=0, le=24)] = 15.0


class StateSpec(Strict):
    """One state of a dwell-time state machine."""

    share: Annotated[float, Field(gt=0, le=1)]
    mean_dwell_seconds: Annotated[float, Field(ge=1, le=MAX_SECONDS)]
    operating: bool = True  # counts towards operating hours (fault onsets, maintenance)


class Phase(Strict):
    """One phase of a repeating cycle."""

    state: Name
    seconds: ShortRange


class Cycle(Strict):
    """Phases run in order, again and again; pauses stretch to follow the schedule."""

    phases: Annotated[list[Phase], Field(min_length=1)]
    pause_state: Name | None = None  # idle time between cycles, so busy share = production


class Demand(Strict):
    """Load/unload control of a compressor by an air demand that follows the schedule."""

    loaded_state: Name = "loaded"
    unloaded_state: Name = "unloaded"
    capacity_m3_min: Annotated[float, Field(gt=0, le=1e4)]
    demand_m3_min: Annotated[float, Field(ge=0, le=1e4)]  # at production factor 1
    storage_m3: Annotated[float, Field(gt=0, le=1e4)]  # free air between cut-in and cut-out
    variation: Annotated[float, Field(ge=0, le=1)] = 0.1  # relative spread of each cycle's demand


class Operation(Strict):
    """How the machine moves between operating states: exactly one of the three."""

    states: dict[Name, StateSpec] | None = None
    cycle: Cycle | None = None
    demand: Demand | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        given = [k for k in ("states", "cycle", "demand") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of states (dwell-time machine), cycle (phases) or "
                f"demand (load/unload) (got {', '.join(given) or 'none'})"
            )
        if self.states is not None and not self.states:
            raise ValueError("states must name at least one state")
        return self


class Harmonic(Strict):
    """A cosine term added to a channel: amplitude, and where it peaks."""

    amplitude: Finite
    peak: Annotated[float, Field(ge=0, le=366)] = 0.0


PerState = Finite | dict[str, Finite]
PerStateSeconds = NonNegativeSeconds | dict[str, NonNegativeSeconds]
Spread = Annotated[float, Field(ge=0, le=1e6)]
PerStateNoise = Spread | dict[str, Spread]


class ChannelSpecRaw(Strict):
    """One channel as written in the catalogue."""

    kind: Literal["analog", "digital", "counter", "derived"]
    unit: str = ""
    description: str = ""
    range: Range | None = None
    resolution: Annotated[float, Field(gt=0, le=1e6)] = 0.01
    noise: PerStateNoise = 0.0  # standard deviation; per state, e.g. 0 at a standstill
    target: PerState | None = None  # analog, digital
    tau_seconds: PerStateSeconds = 0.0  # analog: first-order response
    daily: Harmonic | None = None  # peak: hour of day
    weekly: Harmonic | None = None  # peak: day of week, 0 = Monday
    seasonal: Harmonic | None = None  # peak: day of year
    formula: str | None = None  # derived
    rate: str | None = None  # counter: increase per second
    reset: Literal["never", "shift", "maintenance"] = "never"  # counter
    integer: bool = False  # counter: whole counts

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        needs = {"analog": "target", "digital": "target", "counter": "rate", "derived": "formula"}
        wanted = needs[self.kind]
        if getattr(self, wanted) is None:
            raise ValueError(f"a {self.kind} channel needs {wanted}")
        foreign = {"target", "rate", "formula"} - {wanted}
        for key in sorted(foreign):
            if getattr(self, key) is not None:
                raise ValueError(f"{key} does not apply to a {self.kind} channel")
        if self.kind in ("counter", "derived", "digital"):
            for key in ("daily", "weekly", "seasonal"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} applies to analog channels only")
        return self


class Effect(Strict):
    """How a machine fault moves one channel (or the air demand)."""

    mode: Literal["add", "scale", "set", "flip", "stuck", "dropout"]
    to: Finite = 0.0  # add: offset at full course; scale: factor; set: value
    lag_seconds: NonNegativeSeconds = 0.0  # the channel follows the fault this much later
    bursts: Annotated[float, Field(gt=0, le=1)] | None = None  # share of readings affected


class FaultSpec(Strict):
    """A machine failure mode."""

    description: str = ""
    onset_per_hour: Rate = 0.0  # per operating hour, before the profile multipliers
    progression: Literal["step", "linear", "exponential"] = "step"
    growth: Annotated[float, Field(gt=0, le=50)] = 3.0  # exponential: e-folds over the course
    duration_seconds: SecondsRange | None = None
    severity: SeverityRange = (1.0, 1.0)
    trips: bool = False  # step faults: trip the machine at onset (progressive ones always trip)
    effects: dict[str, Effect] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _course(self) -> Self:
        if self.progression != "step" and self.duration_seconds is None:
            raise ValueError(
                f"a {self.progression} fault needs duration_seconds (onset to failure)"
            )
        if self.progression != "step" and self.trips:
            raise ValueError(
                "trips applies to step faults (a progressive fault trips at the end of its course)"
            )
        return self


class InstrumentFaultSpec(Strict):
    """A fault of the measuring instrument, not the machine: only the reading is wrong."""

    description: str = ""
    channel: str
    mode: Literal["drift", "stuck", "offset", "dropout"]
    amount: Finite = 0.0  # drift: units per hour; offset: units
    onset_per_hour: Rate = 0.0  # per calendar hour
    duration_seconds: SecondsRange
    severity: SeverityRange = (1.0, 1.0)


class Maintenance(Strict):
    """When the machine is serviced, and for how long."""

    every_operating_hours: Annotated[float, Field(gt=0, le=1e6)] | None = None
    health_below: Annotated[float, Field(gt=0, lt=1)] | None = None
    after_trip_seconds: NonNegativeSeconds | None = None
    duration_seconds: SecondsRange = (3600.0, 3600.0)


class ModelSpec(Strict):
    """One equipment type."""

    description: str = ""
    interval_seconds: Annotated[float, Field(gt=0, le=86_400)] = 1.0
    schedule: Schedule = Schedule()
    climate: Climate = Climate()
    operation: Operation
    failure_threshold: Annotated[float, Field(ge=0, lt=1)] = 0.2
    channels: Annotated[dict[Name, ChannelSpecRaw], Field(min_length=1)]
    faults: dict[Name, FaultSpec] = Field(default_factory=dict)
    instrument_faults: dict[Name, InstrumentFaultSpec] = Field(default_factory=dict)
    maintenance: Maintenance = Maintenance()
    # What the figures rest on: a figure (a channel, state, fault or topic) → its source.
    sources: dict[str, str] = Field(default_factory=dict)


class CatalogueFile(Strict):
    """A catalogue file: equipment types by name."""

    models: dict[Name, ModelSpec] = Field(default_factory=dict)
