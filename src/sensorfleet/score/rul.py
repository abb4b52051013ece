"""Remaining-useful-life error: MAE, RMSE and the PHM08 challenge score.

With ``d = predicted - true`` in units of ``unit_seconds``, PHM08 scores each
prediction ``exp(-d / 13) - 1`` when it is early (d < 0) and ``exp(d / 10) - 1``
when it is late: predicting more life than is left is punished harder, because
the machine fails before its maintenance. The challenge counted d in engine
cycles; here the unit is a duration (an hour by default), and both the sum
(the challenge's figure) and the mean per prediction are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import Floats

EARLY_SCALE = 13.0
LATE_SCALE = 10.0


@dataclass(frozen=True)
class RulError:
    """How far the predicted remaining useful life was from the truth."""

    count: int
    mae_seconds: float
    rmse_seconds: float
    phm08: float  # summed over predictions
    phm08_mean: float
    unit_seconds: float


def phm08(error_seconds: Floats, unit_seconds: float) -> Floats:
    """Each prediction's PHM08 penalty; ``error_seconds`` is predicted minus true."""
    d = error_seconds / unit_seconds
    with np.errstate(over="ignore"):
        return np.where(d < 0, np.exp(-d / EARLY_SCALE) - 1, np.exp(d / LATE_SCALE) - 1)


def rul_error(true: Floats, predicted: Floats, unit_seconds: float) -> RulError | None:
    """The errors over readings where both are known; None if there are none."""
    both = np.isfinite(true) & np.isfinite(predicted)
    if not both.any():
        return None
    error = predicted[both] - true[both]
    penalties = phm08(error, unit_seconds)
    return RulError(
        count=int(both.sum()),
        mae_seconds=float(np.abs(error).mean()),
        rmse_seconds=float(np.sqrt(np.mean(error**2))),
        phm08=float(penalties.sum()),
        phm08_mean=float(penalties.mean()),
        unit_seconds=unit_seconds,
    )
