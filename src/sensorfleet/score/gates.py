"""``--fail-under METRIC=VALUE``: the minimum a detector's CI demands of it.

METRIC names an overall figure: ``point.precision``, ``point.recall``,
``point.f1``, ``range.precision``, ``range.recall``, ``range.f1``,
``roc_auc`` or ``pr_auc``. An undefined figure (no scores for an AUC,
nothing flagged for a precision) fails its gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .evaluate import GroupScore

METRICS: tuple[str, ...] = (
    "point.precision",
    "point.recall",
    "point.f1",
    "range.precision",
    "range.recall",
    "range.f1",
    "roc_auc",
    "pr_auc",
)


@dataclass(frozen=True)
class Gate:
    """Fail when ``metric`` is below ``minimum`` (or undefined)."""

    metric: str
    minimum: float


def parse_gate(text: str) -> Gate:
    """``range.f1=0.6`` → ``Gate``; ``InputError`` naming the flag and the fix."""
    metric, _, value = text.partition("=")
    metric = metric.strip()
    if metric not in METRICS:
        raise InputError(
            [f"--fail-under {text!r}: expected METRIC=VALUE with METRIC one of "
             f"{', '.join(METRICS)} (e.g. range.f1=0.6)"]
        )  # fmt: skip
    try:
        minimum = float(value)
    except ValueError:
        minimum = float("nan")
    if not 0 <= minimum <= 1:
        raise InputError(
            [f"--fail-under {text!r}: expected a value between 0 and 1 after '=' "
             "(e.g. range.f1=0.6)"]
        )  # fmt: skip
    return Gate(metric, minimum)


def value_of(scores: GroupScore, metric: str) -> float | None:
    """The figure a gate names."""
    if metric == "roc_auc":
        return scores.roc_auc
    if metric == "pr_auc":
        return scores.pr_auc
    kind, _, name = metric.partition(".")
    figures = scores.point if kind == "point" else scores.range
    value: float | None = getattr(figures, name)
    return value


def failures(scores: GroupScore, gates: list[Gate]) -> list[str]:
    """One line per gate the scores do not pass."""
    lines = []
    for gate in gates:
        value = value_of(scores, gate.metric)
        if value is None:
            lines.append(f"{gate.metric} is undefined, below the required {gate.minimum:g}")
        elif value < gate.minimum:
            lines.append(f"{gate.metric} = {value:.4f}, below the required {gate.minimum:g}")
    return lines
