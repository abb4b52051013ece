"""A month of every built-in model agrees with its catalogue: state shares, and the
production factor of each shift (and weekend) in the busy share of the machines that
follow the schedule."""

from __future__ import annotations

import numpy as np
import pytest
from equipment_helpers import MONDAY, model

from sensorfleet.equipment import EquipmentSimulator, load_catalogue
from sensorfleet.equipment.expected import busy_states, share_tolerance, state_shares

MONTH_S = 30 * 86_400
# A CI-sized month: one reading a minute whatever the model's own interval (readings
# sample the state at instants, so the shares are unbiased at any interval).
INTERVAL_S = 60.0
MODELS = load_catalogue().names()


def month(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Thirty healthy days of ``name`` (no faults): state codes, and production factors."""
    spec = model(name)
    sim = EquipmentSimulator(spec, np.random.SeedSequence(2026), MONDAY, INTERVAL_S, 0.0)
    block = sim.generate(round(MONTH_S / INTERVAL_S))
    epochs = block.timestamps_us / 1e6
    return block.state, sim.calendar.times(epochs).production


@pytest.mark.parametrize("name", MODELS)
def test_a_month_matches_the_state_shares(name: str) -> None:
    """Each operating state's share of a healthy month is its expected share within four
    standard errors."""
    spec = model(name)
    codes, production = month(name)
    expected = state_shares(spec, production)
    for state, share in expected.items():
        observed = float(np.mean(codes == spec.states.index(state)))
        allowed = share_tolerance(spec, state, share, MONTH_S)
        assert abs(observed - share) <= allowed, (state, observed, share)


@pytest.mark.parametrize("name", [n for n in MODELS if busy_states(model(n))])
def test_each_shift_runs_at_its_production_factor(name: str) -> None:
    """Readings taken at each production factor (the shifts at 1 and 0.5, weekends at 0.3
    and 0.15) are busy for the share that factor predicts, within 0.03."""
    spec = model(name)
    codes, production = month(name)
    busy = np.isin(codes, [spec.states.index(s) for s in busy_states(spec)])
    factors = np.unique(production)
    assert len(factors) >= 3  # the month spans shifts and weekends
    for factor in factors:
        at = production == factor
        expected = sum(state_shares(spec, production[at])[s] for s in busy_states(spec))
        assert abs(busy[at].mean() - expected) < 0.03, (factor, busy[at].mean(), expected)
