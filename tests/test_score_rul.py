"""Remaining-useful-life errors: MAE, RMSE and the PHM08 score, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sensorfleet.score.rul import phm08, rul_error


def test_phm08_by_hand() -> None:
    """Late by 10 units costs e - 1; early by 13 costs e - 1; exact costs 0."""
    penalties = phm08(np.array([10 * 3600.0, -13 * 3600.0, 0.0]), 3600.0)
    assert penalties == pytest.approx([np.e - 1, np.e - 1, 0.0])


def test_rul_error_by_hand() -> None:
    """Errors +2 h and -1 h (one reading without a prediction ignored): MAE 1.5 h,
    RMSE sqrt(2.5) h, PHM08 (e^0.2 - 1) + (e^(1/13) - 1)."""
    true = np.array([10.0, 5.0, 3.0]) * 3600
    predicted = np.array([12.0, 4.0, np.nan]) * 3600
    error = rul_error(true, predicted, 3600.0)
    assert error is not None and error.count == 2
    assert error.mae_seconds == pytest.approx(1.5 * 3600)
    assert error.rmse_seconds == pytest.approx(np.sqrt(2.5) * 3600)
    assert error.phm08 == pytest.approx(np.exp(0.2) - 1 + np.exp(1 / 13) - 1)
    assert error.phm08_mean == pytest.approx(error.phm08 / 2)
    assert rul_error(true, np.full(3, np.nan), 3600.0) is None
