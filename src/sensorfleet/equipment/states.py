"""Operating states: what the machine does next, and for how long.

Three ways a model runs, one small class each, chosen by the catalogue's
``operation`` key:

* ``DwellStates``: a state machine. The next state is drawn with probability
  proportional to share / mean dwell and held for an exponential dwell, so in
  the long run each state holds exactly its share of the time.
* ``CycleStates``: phases in order (heating → injection → cooling → ejection),
  with an optional pause after each cycle that stretches so the busy share of
  time equals the schedule's production factor.
* ``DemandStates``: load/unload control. Loaded, the compressor fills the
  receiver at (capacity − demand); unloaded, the plant empties it at demand.
  With storage S between cut-in and cut-out, load lasts S/(C − D) and unload
  S/D, so the loaded share is D/C: the duty cycle.

Each draws a fixed number of numbers per decision from its own stream, so the
states never depend on how readings are split into blocks.

Each also ``plans`` many decisions at once: the same draws and the
same arithmetic as that many calls of ``next``, in arrays, without changing anything.
The timeline keeps the leading decisions that no other event interrupts and
``commit``s them (the stream then stands where that many ``next`` calls leave it), so
a run of short phases costs numpy work, not Python work per phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .schema import Cycle, Demand, ModelSpec

LONGEST_PHASE_SECONDS = 600.0  # a saturated or idle compressor re-reads its demand this often
SHORTEST_PHASE_SECONDS = 1.0  # a loading valve does not cycle faster (also bounds the events)
IDLE_RECHECK_SECONDS = 900.0  # a cycle paused for a closed plant looks again this often


@dataclass(frozen=True)
class Next:
    """The state to enter and how long it lasts; ``demand`` for load/unload models."""

    state: int
    seconds: float
    demand: float = math.nan


@dataclass(frozen=True)
class Plan:
    """The next decisions of an operator, as ``next`` would take them one by one.

    ``factor_checks`` are the decisions that read the production factor: the plan
    assumed ``factor`` there, so it holds only up to the first such decision whose
    start sees another factor. ``positions`` are the cycle positions after each one,
    ``demands`` a compressor's air demand with each.
    """

    states: npt.NDArray[np.int64]
    seconds: npt.NDArray[np.float64]
    factor: float = math.nan
    factor_checks: npt.NDArray[np.int64] | None = None
    positions: npt.NDArray[np.int64] | None = None
    demands: list[float] | None = None


class DwellStates:
    """A dwell-time state machine with long-run shares."""

    def __init__(self, spec: ModelSpec, states: tuple[str, ...]) -> None:
        assert spec.operation.states is not None
        table = spec.operation.states
        self.codes = [states.index(name) for name in table]
        self.means = [table[name].mean_dwell_seconds for name in table]
        weights = np.array([table[n].share / table[n].mean_dwell_seconds for n in table])
        self.cumulative = np.cumsum(weights / weights.sum())

    def next(self, rng: np.random.Generator, now: float, current: int, resume: bool) -> Next:
        pick, dwell = rng.random(2)
        which = min(int(np.searchsorted(self.cumulative, pick, side="right")), len(self.codes) - 1)
        return Next(self.codes[which], -self.means[which] * math.log1p(-dwell))

    def plan(self, rng: np.random.Generator, now: float, current: int, count: int) -> Plan:
        """The next ``count`` decisions (the stream moves; ``commit`` sets it right)."""
        draws = rng.random(2 * count)
        last = len(self.codes) - 1
        which = np.minimum(np.searchsorted(self.cumulative, draws[0::2], side="right"), last)
        means = np.asarray(self.means)[which].tolist()
        # math.log1p, as ``next`` uses: numpy's own log1p can differ in the last bit.
        log1p, dwells = math.log1p, draws[1::2].tolist()
        seconds = [-mean * log1p(-dwell) for mean, dwell in zip(means, dwells, strict=True)]
        return Plan(np.asarray(self.codes, dtype=np.int64)[which], np.array(seconds))

    def commit(self, rng: np.random.Generator, plan: Plan, taken: int) -> None:
        """Advance the stream (at the plan's start) past ``taken`` decisions."""
        rng.random(2 * taken)


class CycleStates:
    """Phases in a fixed order, then a pause that follows the production factor."""

    def __init__(
        self, cycle: Cycle, states: tuple[str, ...], production: Callable[[float], float]
    ) -> None:
        self.phases = [(states.index(p.state), p.seconds) for p in cycle.phases]
        self.pause = states.index(cycle.pause_state) if cycle.pause_state else None
        self.mean_cycle = sum((low + high) / 2 for _, (low, high) in self.phases)
        self.production = production
        self.position = -1  # index of the current phase; len(phases) while paused

    def next(self, rng: np.random.Generator, now: float, current: int, resume: bool) -> Next:
        draw = float(rng.random())
        self.position = 0 if resume else self.position + 1
        if self.position >= len(self.phases):
            factor = self.production(now)
            if self.pause is not None and self.position == len(self.phases) and factor < 1:
                pause = (
                    IDLE_RECHECK_SECONDS if factor <= 0 else self.mean_cycle * (1 - factor) / factor
                )
                # A closed plant pauses again and again; the cycle restarts once it opens.
                self.position = len(self.phases) - 1 if factor <= 0 else len(self.phases)
                return Next(self.pause, pause)
            self.position = 0
        state, (low, high) = self.phases[self.position]
        return Next(state, low + (high - low) * draw)

    def plan(self, rng: np.random.Generator, now: float, current: int, count: int) -> Plan:
        """The next ``count`` decisions, assuming the production factor stays as it is now."""
        draws = rng.random(count)
        factor = self.production(now)
        phases, pause = len(self.phases), self.pause
        pausing = pause is not None and factor < 1
        which, checks, positions = _cycle_positions(
            self.position, phases, pause is not None, pausing, factor, count
        )
        codes = [state for state, _ in self.phases] + [-1 if pause is None else pause]
        lows = np.array([low for _, (low, _high) in self.phases] + [0.0])[which]
        highs = np.array([high for _, (_low, high) in self.phases] + [0.0])[which]
        seconds = lows + (highs - lows) * draws  # ``next``'s arithmetic, element by element
        if pausing:  # a pause's length is no draw (its draw goes unused)
            length = (
                IDLE_RECHECK_SECONDS if factor <= 0 else self.mean_cycle * (1 - factor) / factor
            )
            seconds[which == phases] = length
        states = np.array(codes, dtype=np.int64)[which]
        return Plan(states, seconds, factor, checks, positions)

    def commit(self, rng: np.random.Generator, plan: Plan, taken: int) -> None:
        """Advance the stream past ``taken`` decisions and stand where they leave the cycle."""
        rng.random(taken)
        assert plan.positions is not None
        self.position = int(plan.positions[taken - 1])


def _cycle_positions(
    position: int, phases: int, has_pause: bool, pausing: bool, factor: float, count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``CycleStates.next``'s positions for ``count`` decisions from ``position`` at a
    constant ``factor``: each decision's entry (a phase, or ``phases`` for the pause),
    the decisions that read the factor, and the position after each decision."""
    steps = np.arange(count, dtype=np.int64)
    after_last = position + 1
    if not pausing:  # phases round and round
        entries = (after_last if after_last < phases else 0) + steps
        entries %= phases
        previous = np.concatenate(([position], entries[:-1]))
        reads = (entries == 0) & (previous == phases - 1) & has_pause
        return entries, np.flatnonzero(reads), entries
    first = after_last if after_last <= phases else 0
    if factor > 0:  # phases, then a pause, round and round
        entries = (first + steps) % (phases + 1)
        return entries, np.flatnonzero(entries == phases), entries
    # A closed plant: the cycle finishes, then pauses again and again (position stays
    # on the last phase, so each pause reads the factor anew).
    entries = np.minimum(first + steps, phases)
    paused = entries == phases
    return entries, np.flatnonzero(paused), np.where(paused, phases - 1, entries)


class DemandStates:
    """Load/unload control of an air compressor."""

    def __init__(
        self,
        demand: Demand,
        states: tuple[str, ...],
        production: Callable[[float], float],
        extra_demand: Callable[[float], float],
    ) -> None:
        self.spec = demand
        self.loaded = states.index(demand.loaded_state)
        self.unloaded = states.index(demand.unloaded_state)
        self.production = production
        self.extra_demand = extra_demand  # leaks: m³/min added by active faults
        self.demand = 0.0

    def next(self, rng: np.random.Generator, now: float, current: int, resume: bool) -> Next:
        spec = self.spec
        spread = float(rng.standard_normal())
        capacity = spec.capacity_m3_min
        if resume or current != self.loaded or self.demand >= capacity:
            base = spec.demand_m3_min * self.production(now) * (1 + spec.variation * spread)
            self.demand = max(0.0, base) + self.extra_demand(now)
            if self.demand >= capacity:
                return Next(self.loaded, LONGEST_PHASE_SECONDS, self.demand)
            seconds = 60 * spec.storage_m3 / (capacity - self.demand)
            return Next(self.loaded, _bounded(seconds), self.demand)
        if self.demand <= 0:
            return Next(self.unloaded, LONGEST_PHASE_SECONDS, self.demand)
        seconds = 60 * spec.storage_m3 / self.demand
        return Next(self.unloaded, _bounded(seconds), self.demand)

    def plan(self, rng: np.random.Generator, now: float, current: int, count: int) -> Plan:
        """The next ``count`` decisions after ``current``, assuming the production factor
        and the faults' extra demand stay as they are now (``next``'s float arithmetic)."""
        spec, loaded, unloaded = self.spec, self.loaded, self.unloaded
        capacity, storage = spec.capacity_m3_min, spec.storage_m3
        factor, extra, demand = self.production(now), self.extra_demand(now), self.demand
        states: list[int] = []
        seconds: list[float] = []
        demands: list[float] = []
        checks: list[int] = []
        for index, spread in enumerate(rng.standard_normal(count).tolist()):
            if current != loaded or demand >= capacity:
                checks.append(index)  # a new demand, read from the factor
                base = spec.demand_m3_min * factor * (1 + spec.variation * spread)
                demand = max(0.0, base) + extra
                current = loaded
                length = (
                    LONGEST_PHASE_SECONDS
                    if demand >= capacity
                    else _bounded(60 * storage / (capacity - demand))
                )
            else:
                current = unloaded
                length = LONGEST_PHASE_SECONDS if demand <= 0 else _bounded(60 * storage / demand)
            states.append(current)
            seconds.append(length)
            demands.append(demand)
        checked = np.array(checks, dtype=np.int64)
        return Plan(
            np.array(states, dtype=np.int64), np.array(seconds), factor, checked, demands=demands
        )

    def commit(self, rng: np.random.Generator, plan: Plan, taken: int) -> None:
        """Advance the stream past ``taken`` decisions and hold the last one's demand."""
        rng.standard_normal(taken)
        assert plan.demands is not None
        self.demand = plan.demands[taken - 1]


def _bounded(seconds: float) -> float:
    return min(max(seconds, SHORTEST_PHASE_SECONDS), LONGEST_PHASE_SECONDS)


Operator = DwellStates | CycleStates | DemandStates
