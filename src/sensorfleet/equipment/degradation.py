"""How far a machine fault has progressed: closed-form curves of time since onset.

A fault's course runs from onset (progress 0) to the failure threshold
(progress 1) over ``course`` seconds: ``step`` is there at once, ``linear``
drifts, ``exponential`` follows (e^(k·τ/T) − 1)/(e^k − 1), the run-to-failure
shape of rolling-bearing wear. Health falls from 1 to the model's failure
threshold as progress goes from 0 to 1. A channel that follows the fault "with
a lag" sees the progress through a first-order lag, solved exactly for each
shape, so no reading ever depends on the one before it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def progress(shape: str, tau: FloatArray, course: FloatArray | float, growth: float) -> FloatArray:
    """Progress 0 → 1 at ``tau`` seconds after onset of a course ``course`` seconds long."""
    if shape == "step":
        return np.ones_like(tau)
    ratio = np.clip(tau / course, 0.0, 1.0)
    if shape == "linear":
        return ratio
    curve: FloatArray = np.expm1(growth * ratio) / math.expm1(growth)
    return curve


def lagged_progress(
    shape: str, tau: FloatArray, course: FloatArray | float, growth: float, lag: float
) -> FloatArray:
    """``progress`` seen through a first-order lag of ``lag`` seconds, started at onset.

    After the course ends the input holds at 1, and the output closes the rest of
    the gap with the same lag.
    """
    if lag <= 0:
        return progress(shape, tau, course, growth)
    if shape == "step":
        return -np.expm1(-tau / lag)  # 1 − e^(−τ/L): a unit step through the lag
    within = np.minimum(tau, course)
    settle = -np.expm1(-within / lag)
    if shape == "linear":
        at: FloatArray = (within - lag * settle) / course
    else:
        rate = growth / course  # exponential: u = (e^(aτ) − 1)/E through the lag
        rising = (np.exp(rate * within) - np.exp(-within / lag)) / (1.0 + rate * lag)
        at = (rising - settle) / math.expm1(growth)
    beyond = np.maximum(tau - within, 0.0)
    curve: FloatArray = 1.0 - (1.0 - at) * np.exp(-beyond / lag)
    return curve


def time_to_progress(shape: str, level: float, course: float, growth: float) -> float:
    """Seconds after onset at which progress first reaches ``level`` (0-1)."""
    if shape == "step" or level <= 0:
        return 0.0
    level = min(level, 1.0)
    if shape == "linear":
        return level * course
    return course * math.log1p(level * math.expm1(growth)) / growth


def health(progressed: FloatArray | float, threshold: float) -> FloatArray | float:
    """Health 1 → ``threshold`` as progress goes 0 → 1."""
    return 1.0 - (1.0 - threshold) * progressed


# A step fault that does not trip takes at most this share of the margin above the threshold.
STEP_HEALTH_LOSS = 0.5


def step_progress(severity: FloatArray | float, trips: bool) -> FloatArray | float:
    """The progress a step fault stands for: all the way when it trips, else half its severity."""
    return 1.0 if trips else STEP_HEALTH_LOSS * severity


def step_health(severity: float, threshold: float) -> float:
    """Health while a non-tripping step fault of ``severity`` is active."""
    return float(health(step_progress(severity, False), threshold))
