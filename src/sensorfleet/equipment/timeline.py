"""The event process of one machine: states, faults, trips and maintenance as segments.

Nothing here looks at single readings. Events (a state change, a fault's
onset, its trip at the failure threshold, maintenance starting and ending, an
instrument fault) are drawn as times; between two events every label is
constant, and that stretch is a ``Segment``. The simulator later fills the
readings of each segment in closed form.

Events depend only on the model, the seed and the commands given, never on
how readings are asked for: ``extend`` generates segments until a time is
covered, and each decision consumes a fixed number of draws from its own
stream. ``cut`` ends the open segment at an instant so that a command (a
forced fault, maintenance) takes effect exactly there.

Runs of plain state changes (a cycle's phases, a dwell machine's states, a
compressor's load and unload) are taken in bulk: the operator plans many
decisions in arrays, the budgets and every other event's time are followed in
arrays too, and the leading decisions that nothing else interrupts become one
run of segments at once. The result is the one the
event-by-event loop gives, bit for bit: the same draws, the same float
operations in the same order (sequential sums, ``x - 0.0`` where the loop skips).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from .calendar import Calendar
from .catalogue import EquipmentModel
from .degradation import step_health, time_to_progress
from .segments import InstrumentFault, MachineFault, Run, SavedTimeline, Segment, Segments
from .states import CycleStates, DemandStates, DwellStates, Next, Operator, Plan

INFINITY = math.inf
EPSILON = 1e-9  # seconds: events this close count as simultaneous
# However high the profiles push them, onsets stay at most one a second (events stay
# fewer than readings, so a run's cost stays bounded).
MAX_ONSETS_PER_HOUR = 3600.0
# State decisions planned at once; the unused ones are given back to the stream.
# How many: as many as the last run took, doubled, within these bounds (a dwell machine
# changes state a few times a block, a moulding machine hundreds of times). The count
# changes nothing but the cost: unused decisions are given back.
FEWEST_PLANNED = 8
MOST_PLANNED = 8192


def _capped(rates: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    total = float(rates.sum()) if len(rates) else 0.0
    return rates * (MAX_ONSETS_PER_HOUR / total) if total > MAX_ONSETS_PER_HOUR else rates


# What changes as the timeline advances (the rest is fixed by the model).
_MUTABLE = (
    "now",
    "fault",
    "instrument",
    "onset_budget",
    "instrument_budget",
    "operating_seconds",
    "_marks",
    "state",
    "state_start",
    "state_end",
    "demand",
)


class Timeline:
    """States, faults and maintenance of one machine, as a growing list of segments."""

    def __init__(
        self,
        model: EquipmentModel,
        calendar: Calendar,
        origin_epoch: float,
        streams: dict[str, np.random.Generator],
        rate_multiplier: float,
    ) -> None:
        self.origin, self.streams = origin_epoch, streams
        self._use(model, calendar, rate_multiplier)
        self.operator = self._operator()
        self._handlers = {
            "state": self._state_over,
            "trip": self._trip,
            "clear": self._clear,
            "service": self.start_maintenance,
            "onset": self._onset,
            "instrument_end": self._instrument_over,
            "instrument": self._instrument_onset,
        }
        self.segments = Segments()
        self._planned = FEWEST_PLANNED  # state decisions to plan at once (cost only)
        self.now = 0.0
        self.fault: MachineFault | None = None
        self.instrument: InstrumentFault | None = None
        self.onset_budget = self._budget(self.fault_rates, "faults")
        self.instrument_budget = self._budget(self.instrument_rates, "instruments")
        self.operating_seconds = 0.0  # since the last maintenance
        self._marks = (self.onset_budget, self.instrument_budget, self.operating_seconds)
        self._enter(self.operator.next(streams["states"], 0.0, -1, True), 0.0)

    def _use(self, model: EquipmentModel, calendar: Calendar, rate_multiplier: float) -> None:
        spec = model.spec
        self.model, self.spec, self.calendar = model, spec, calendar
        self.fault_code = model.states.index("fault")
        self.maintenance_code = model.states.index("maintenance")
        self.operating = model.operating
        self.fault_specs = list(spec.faults.values())
        self.instrument_specs = list(spec.instrument_faults.values())
        self.fault_rates = _capped(
            np.array([f.onset_per_hour for f in self.fault_specs]) * rate_multiplier
        )
        self.instrument_rates = _capped(
            np.array([f.onset_per_hour for f in self.instrument_specs]) * rate_multiplier
        )

    def reconfigure(
        self, model: EquipmentModel, calendar: Calendar, rate_multiplier: float
    ) -> None:
        """Run ``model`` (same states and faults, other figures) from ``now`` on.

        The state, an active fault and the time to the next onset carry over; onset
        times are rescaled to the new rates, which keeps them exponential (memoryless).
        """
        old_faults, old_instruments = self.fault_rates.sum(), self.instrument_rates.sum()
        self._use(model, calendar, rate_multiplier)
        self.onset_budget = self._rescale(self.onset_budget, old_faults, self.fault_rates)
        self.instrument_budget = self._rescale(
            self.instrument_budget, old_instruments, self.instrument_rates
        )
        self._marks = (self.onset_budget, self.instrument_budget, self.operating_seconds)
        carried = vars(self.operator)
        self.operator = self._operator()
        for name in ("position", "demand"):  # where a cycle stands, a compressor's demand
            if name in carried and hasattr(self.operator, name):
                setattr(self.operator, name, carried[name])

    def _rescale(self, budget: float, old_total: float, rates: npt.NDArray[np.float64]) -> float:
        new_total = float(rates.sum()) if len(rates) else 0.0
        if new_total <= 0:
            return INFINITY
        if old_total <= 0 or not math.isfinite(budget):
            return self._budget(rates, "faults" if rates is self.fault_rates else "instruments")
        return budget * float(old_total) / new_total

    def save(self) -> SavedTimeline:
        """The changing state, copied."""
        return SavedTimeline(
            values={name: getattr(self, name) for name in _MUTABLE},
            segments=self.segments.copy(),
            operator=dict(vars(self.operator)),
            streams={name: rng.bit_generator.state for name, rng in self.streams.items()},
        )

    def load(self, saved: SavedTimeline) -> None:
        """Go back to ``saved`` (which stays usable)."""
        for name, value in saved.values.items():
            setattr(self, name, value)
        self.segments = saved.segments.copy()
        vars(self.operator).update(saved.operator)
        for name, state in saved.streams.items():
            self.streams[name].bit_generator.state = state

    # ---- the model's way of running --------------------------------------------------
    def _operator(self) -> Operator:
        operation, states = self.spec.operation, self.model.states
        if operation.states is not None:
            return DwellStates(self.spec, states)
        if operation.cycle is not None:
            return CycleStates(operation.cycle, states, self._production)
        assert operation.demand is not None
        return DemandStates(operation.demand, states, self._production, self.extra_demand)

    def _production(self, now: float) -> float:
        return self.calendar.production_at(self.origin + now)

    def extra_demand(self, now: float) -> float:
        """Air demand (m³/min) added by the active machine fault at ``now`` (leaks)."""
        fault = self.fault
        if fault is None:
            return 0.0
        effect = self.fault_specs[fault.index].effects.get("demand")
        return 0.0 if effect is None else effect.to * fault.severity

    def _enter(self, step: Next, now: float) -> None:
        self.state, self.state_start, self.state_end = step.state, now, now + step.seconds
        self.demand = step.demand

    def _resume(self, now: float) -> None:
        self._enter(self.operator.next(self.streams["states"], now, self.state, True), now)

    # ---- generating segments ---------------------------------------------------------
    def extend(self, until: float) -> None:
        """Generate segments until one covers the instant ``until`` (and beyond)."""
        while self.now <= until:
            if self._run_of_states(until):
                continue
            end = self._fire_due()
            self.segments.append(
                Segment(
                    self.now,
                    end,
                    self.state,
                    self.state_start,
                    self.state_end,
                    self.demand,
                    self.fault,
                    self.instrument,
                )
            )
            self._marks = (self.onset_budget, self.instrument_budget, self.operating_seconds)
            self._elapse(end - self.now)
            self.now = end

    # ---- runs of plain state changes in bulk -------------------------------------------
    def _run_of_states(self, until: float) -> bool:
        """Add the segments of the next plain state changes at once; False when the next
        event is anything else (the event-by-event loop takes it)."""
        now, operator = self.now, self.operator
        if self.state_end > now + EPSILON or self.state in (self.fault_code, self.maintenance_code):
            return False
        rng = self.streams["states"]
        start_state = rng.bit_generator.state
        count = self._planned
        plan = operator.plan(rng, now, self.state, count)
        rng.bit_generator.state = start_state
        # Each state is entered when the last one ends: ends are a running sum.
        times = np.add.accumulate(np.concatenate(([now], plan.seconds)))
        taken, budgets = self._uninterrupted(plan, times, until)
        self._planned = min(max(2 * taken, FEWEST_PLANNED), MOST_PLANNED)
        if taken == 0:
            return False
        operator.commit(rng, plan, taken)
        starts, ends = times[:taken], times[1 : taken + 1]
        states = plan.states[:taken]
        demands = (
            np.full(taken, math.nan) if plan.demands is None else np.array(plan.demands[:taken])
        )
        self.segments.add_run(Run(starts, ends, states, demands, self.fault, self.instrument))
        onset, instrument_budget, operating = budgets
        self._marks = (
            float(onset[taken - 1]),
            float(instrument_budget[taken - 1]),
            float(operating[taken - 1]),
        )
        self.onset_budget = float(onset[taken])
        self.instrument_budget = float(instrument_budget[taken])
        self.operating_seconds = float(operating[taken])
        self.state = int(states[-1])
        self.state_start, self.state_end = float(starts[-1]), float(ends[-1])
        self.demand = math.nan if plan.demands is None else plan.demands[taken - 1]
        self.now = self.state_end
        return True

    def _uninterrupted(
        self, plan: Plan, times: npt.NDArray[np.float64], until: float
    ) -> tuple[int, tuple[npt.NDArray[np.float64], ...]]:
        """How many of the plan's decisions the loop would take as plain state changes,
        and the budgets (onset, instrument, operating seconds) before each and after."""
        starts, ends = times[:-1], times[1:]
        operating = np.asarray(self.operating)[plan.states]
        elapsed = ends - starts  # the loop's ``end - now``
        zero = np.zeros(len(elapsed))
        worked_now = np.where(operating, elapsed, 0.0)
        onset = np.subtract.accumulate(
            np.concatenate(([self.onset_budget], worked_now if self.fault is None else zero))
        )
        instrument = np.subtract.accumulate(
            np.concatenate(([self.instrument_budget], elapsed if self.instrument is None else zero))
        )
        worked = np.add.accumulate(np.concatenate(([self.operating_seconds], worked_now)))
        # The earliest other event after entering each state, as ``_candidates`` has them.
        other = np.full(len(starts), self._fixed_events())
        maintenance = self.spec.maintenance
        if self.fault is None:
            other = np.minimum(other, np.where(operating, starts + onset[:-1], INFINITY))
        if maintenance.every_operating_hours is not None:
            due = np.maximum(maintenance.every_operating_hours * 3600 - worked[:-1], 0.0)
            other = np.minimum(other, np.where(operating, starts + due, INFINITY))
        if self.instrument is None:
            other = np.minimum(other, starts + instrument[:-1])
        soon = starts + EPSILON
        plain = (other > soon) & (ends <= other) & (ends > soon) & (starts <= until)
        # Fault and maintenance have events of their own when they end.
        plain &= (plan.states != self.fault_code) & (plan.states != self.maintenance_code)
        if plan.factor_checks is not None and len(plan.factor_checks):
            checked = plan.factor_checks
            seen = self.calendar.production_many(self.origin + starts[checked])
            plain[checked[seen != plan.factor]] = False
        taken = int(np.argmin(plain)) if not plain.all() else len(plain)
        return taken, (onset, instrument, worked)

    def _fixed_events(self) -> float:
        """The earliest event a run of plain state changes does not move: the machine
        fault's trip, service or end, the instrument fault's end."""
        fault, maintenance, earliest = self.fault, self.spec.maintenance, INFINITY
        if fault is not None and fault.tripped_at is None:
            spec = self.fault_specs[fault.index]
            if spec.progression != "step":
                earliest = fault.onset + fault.course
                if maintenance.health_below is not None:
                    level = (1 - maintenance.health_below) / (1 - self.spec.failure_threshold)
                    if level < 1:
                        reach = time_to_progress(spec.progression, level, fault.course, spec.growth)
                        earliest = min(earliest, fault.onset + reach)
            earliest = min(earliest, fault.end)
        if self.instrument is not None:
            earliest = min(earliest, self.instrument.end)
        return earliest

    def cut(self, at: float) -> None:
        """End the open segment at ``at`` so that a command can act from that instant."""
        self.extend(at)
        last = self.segments.last()
        if not last.start <= at < self.now:
            return
        # Back to the counters at the segment's start: nothing was drawn inside it.
        self.onset_budget, self.instrument_budget, self.operating_seconds = self._marks
        if last.start == at:
            self.segments.pop()
        else:
            last.end = at
            self._elapse(at - last.start)
        self.now = at

    def drop_before(self, instant: float) -> None:
        """Forget segments that end at or before ``instant`` (keeping the last one)."""
        self.segments.drop_before(instant)

    def _elapse(self, seconds: float) -> None:
        if self.operating[self.state]:
            self.operating_seconds += seconds
            if self.fault is None:
                self.onset_budget -= seconds
        if self.instrument is None:
            self.instrument_budget -= seconds

    def _candidates(self) -> dict[str, float]:
        now, fault, maintenance = self.now, self.fault, self.spec.maintenance
        times = {"state": self.state_end}
        in_service = self.state in (self.fault_code, self.maintenance_code)
        if fault is not None and fault.tripped_at is None:
            spec = self.fault_specs[fault.index]
            if spec.progression != "step":
                times["trip"] = fault.onset + fault.course
                if maintenance.health_below is not None and not in_service:
                    level = (1 - maintenance.health_below) / (1 - self.spec.failure_threshold)
                    if level < 1:
                        reach = time_to_progress(spec.progression, level, fault.course, spec.growth)
                        times["service"] = max(now, fault.onset + reach)
            times["clear"] = fault.end
        if self.operating[self.state]:
            if fault is None:
                times["onset"] = now + self.onset_budget
            if maintenance.every_operating_hours is not None:
                due = maintenance.every_operating_hours * 3600 - self.operating_seconds
                times["service"] = min(times.get("service", INFINITY), now + max(due, 0.0))
        if self.instrument is not None:
            times["instrument_end"] = self.instrument.end
        else:
            times["instrument"] = now + self.instrument_budget
        return times

    def _fire_due(self) -> float:
        """Fire everything due now, one event at a time; return when the next one falls."""
        for _ in range(100):
            times = self._candidates()
            due = next((name for name, at in times.items() if at <= self.now + EPSILON), None)
            if due is None:
                return min(times.values())
            self._handlers[due]()
        raise RuntimeError("equipment timeline: events keep firing at one instant")

    # ---- events ----------------------------------------------------------------------
    def _state_over(self) -> None:
        now = self.now
        if self.state == self.maintenance_code:
            self.fault = None
            self.operating_seconds = 0.0
            self._resume(now)
        elif self.state == self.fault_code:
            self.start_maintenance()
        else:
            self._enter(self.operator.next(self.streams["states"], now, self.state, False), now)

    def _trip(self) -> None:
        assert self.fault is not None
        self.fault = replace(self.fault, tripped_at=self.now)
        after = self.spec.maintenance.after_trip_seconds
        self.state, self.state_start = self.fault_code, self.now
        self.state_end = INFINITY if after is None else self.now + after

    def _clear(self) -> None:
        self.fault = None

    def start_maintenance(self, seconds: float | None = None) -> None:
        """Service the machine from now; it ends the machine fault and restores health."""
        if seconds is None:
            low, high = self.spec.maintenance.duration_seconds
            seconds = low + (high - low) * float(self.streams["maintenance"].random())
        self.state, self.state_start = self.maintenance_code, self.now
        self.state_end = self.now + max(seconds, EPSILON)

    def _onset(self) -> None:
        draws = self.streams["faults"].random(4)
        rates = self.fault_rates
        pick = np.searchsorted(np.cumsum(rates) / rates.sum(), draws[0], side="right")
        index = min(int(pick), len(rates) - 1)
        spec = self.fault_specs[index]
        low, high = spec.severity
        severity = low + (high - low) * float(draws[1])
        self.onset_budget = self._budget(rates, draw=float(draws[3]))
        self.start_fault(index, severity, None, draw=float(draws[2]))

    def start_fault(
        self, index: int, severity: float, seconds: float | None, draw: float | None = None
    ) -> None:
        """Begin machine fault ``index`` now, replacing any other (and any trip or service)."""
        spec = self.fault_specs[index]
        if seconds is None and spec.duration_seconds is not None:
            low, high = spec.duration_seconds
            if draw is None:
                draw = float(self.streams["faults"].random())
            seconds = low + (high - low) * draw
        now = self.now
        course = seconds if spec.progression != "step" and seconds else INFINITY
        end = now + seconds if spec.progression == "step" and seconds else INFINITY
        self.fault = MachineFault(index, now, course, min(max(severity, 0.0), 1.0), end)
        if self.state in (self.fault_code, self.maintenance_code):
            self._resume(now)
        if spec.trips:
            self._trip()
        elif spec.progression == "step":
            health = step_health(self.fault.severity, self.spec.failure_threshold)
            below = self.spec.maintenance.health_below
            if below is not None and health < below:
                self.start_maintenance()

    def end_fault(self) -> None:
        """End the machine fault now; a tripped machine goes back to work."""
        if self.fault is None:
            return
        self.fault = None
        if self.state == self.fault_code:
            self._resume(self.now)

    def _instrument_onset(self) -> None:
        draws = self.streams["instruments"].random(4)
        rates = self.instrument_rates
        pick = np.searchsorted(np.cumsum(rates) / rates.sum(), draws[0], side="right")
        index = min(int(pick), len(rates) - 1)
        self.instrument_budget = self._budget(rates, draw=float(draws[3]))
        self.start_instrument_fault(index, None, None, draws=(float(draws[1]), float(draws[2])))

    def start_instrument_fault(
        self,
        index: int,
        severity: float | None,
        seconds: float | None,
        draws: tuple[float, float] | None = None,
    ) -> None:
        """Begin instrument fault ``index`` now (severity and length drawn when None)."""
        spec = self.instrument_specs[index]
        if draws is None:
            first, second = self.streams["instruments"].random(2)
            draws = (float(first), float(second))
        if severity is None:
            low, high = spec.severity
            severity = low + (high - low) * draws[0]
        if seconds is None:
            low, high = spec.duration_seconds
            seconds = low + (high - low) * draws[1]
        end = self.now + seconds if math.isfinite(seconds) else INFINITY
        self.instrument = InstrumentFault(index, self.now, min(max(severity, 0.0), 1.0), end)

    def _instrument_over(self) -> None:
        self.instrument = None

    def end_instrument_fault(self) -> None:
        """End the instrument fault now."""
        self.instrument = None

    def _budget(
        self, rates: npt.NDArray[np.float64], stream: str = "", draw: float | None = None
    ) -> float:
        """Seconds (operating, for machine faults) until the next onset at these rates."""
        total = float(rates.sum()) if len(rates) else 0.0
        if draw is None:
            draw = float(self.streams[stream].random())
        if total <= 0:
            return INFINITY
        return -math.log1p(-draw) / total * 3600.0
