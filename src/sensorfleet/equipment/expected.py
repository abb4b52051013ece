"""What a model should do, from its catalogue figures alone: the long-run share of each
operating state at given production factors. Fidelity checks compare observed rows with
these, so a check cannot drift from what the simulator is told to do.

Faults and maintenance take time from every state alike; the shares here are those of a
healthy machine, so compare them with the readings outside ``fault`` and ``maintenance``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .catalogue import EquipmentModel


def state_shares(
    model: EquipmentModel, production: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> dict[str, float]:
    """Expected share of readings in each operating state for readings taken at the given
    production factors (the schedule's factor at each reading).

    A dwell-time machine keeps its catalogue shares whatever the schedule. A cycle is busy
    for the production factor of the time (its pause stretches to the rest), its phases
    sharing the busy time by their mean lengths. A load/unload compressor is loaded for
    its duty, demand × production / capacity (at most 1). ``weights`` counts the readings
    taken at each factor (one each by default)."""
    factors = np.asarray(production, dtype=np.float64)
    counts = None if weights is None else np.asarray(weights, dtype=np.float64)
    operation = model.spec.operation
    if operation.states is not None:
        return {name: state.share for name, state in operation.states.items()}
    if operation.cycle is not None:
        lengths: dict[str, float] = {}
        for phase in operation.cycle.phases:
            lengths[phase.state] = lengths.get(phase.state, 0.0) + sum(phase.seconds) / 2
        cycle = sum(lengths.values())
        pause = operation.cycle.pause_state
        busy = float(np.average(factors, weights=counts)) if pause is not None else 1.0
        shares = {state: busy * length / cycle for state, length in lengths.items()}
        if pause is not None:
            shares[pause] = shares.get(pause, 0.0) + 1.0 - busy
        return shares
    demand = operation.demand
    assert demand is not None  # the schema allows exactly one of the three
    duty = float(
        np.average(
            np.clip(demand.demand_m3_min * factors / demand.capacity_m3_min, 0.0, 1.0),
            weights=counts,
        )
    )
    return {demand.loaded_state: duty, demand.unloaded_state: 1.0 - duty}


def busy_states(model: EquipmentModel) -> tuple[str, ...]:
    """The states whose share follows the production factor: a cycle's phases, a
    compressor's loaded state; none for a dwell-time machine."""
    operation = model.spec.operation
    if operation.cycle is not None:
        return tuple(dict.fromkeys(phase.state for phase in operation.cycle.phases))
    if operation.demand is not None:
        return (operation.demand.loaded_state,)
    return ()


def share_tolerance(model: EquipmentModel, state: str, share: float, seconds: float) -> float:
    """How far an observed share may stray over ``seconds`` of healthy running: four
    standard errors of the share from the number of visits the dwell times allow,
    s(1 − s)·√(1/n_state + 1/n_others), plus 0.005; 0.01 for the states of a cycle or a
    load/unload compressor, which make thousands of visits a day."""
    states = model.spec.operation.states
    if states is None or share <= 0.0 or share >= 1.0 or seconds <= 0.0:
        return 0.01
    visits = {name: seconds * spec.share / spec.mean_dwell_seconds for name, spec in states.items()}
    rest = sum(v for name, v in visits.items() if name != state)
    return 4 * share * (1 - share) * math.sqrt(1 / visits[state] + 1 / rest) + 0.005
