"""What a model should do, from its catalogue figures alone: the long-run share of each
operating state at given production factors. Fidelity checks compare observed rows with
these, so a check cannot drift from what the simulator is told to do.

Faults and maintenance take time from every state alike; the shares here are those of a
healthy machine, so compare them with the readings outside ``fault`` and ``maintenance``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .catalogue import EquipmentModel


def state_shares(model: EquipmentModel, production: npt.ArrayLike) -> dict[str, float]:
    """Expected share of readings in each operating state for readings taken at the given
    production factors (the schedule's factor at each reading).

    A dwell-time machine keeps its catalogue shares whatever the schedule. A cycle is busy
    for the production factor of the time (its pause stretches to the rest), its phases
    sharing the busy time by their mean lengths. A load/unload compressor is loaded for
    its duty, demand × production / capacity (at most 1)."""
    factors = np.asarray(production, dtype=np.float64)
    operation = model.spec.operation
    if operation.states is not None:
        return {name: state.share for name, state in operation.states.items()}
    if operation.cycle is not None:
        lengths: dict[str, float] = {}
        for phase in operation.cycle.phases:
            lengths[phase.state] = lengths.get(phase.state, 0.0) + sum(phase.seconds) / 2
        cycle = sum(lengths.values())
        pause = operation.cycle.pause_state
        busy = float(np.mean(factors)) if pause is not None else 1.0
        shares = {state: busy * length / cycle for state, length in lengths.items()}
        if pause is not None:
            shares[pause] = shares.get(pause, 0.0) + 1.0 - busy
        return shares
    demand = operation.demand
    assert demand is not None  # the schema allows exactly one of the three
    duty = float(
        np.mean(np.clip(demand.demand_m3_min * factors / demand.capacity_m3_min, 0.0, 1.0))
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
