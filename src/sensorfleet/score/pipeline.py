"""Scoring from start to finish: what ``sensorfleet score`` calls.

``score_detectors`` reads the truth once, then scores the predictions file
(if any) and each baseline against it; the predictions come first in the
returned list, and the baselines are scored on the same span of readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..errors import InputError
from .baselines import BASELINES, run_baseline
from .evaluate import Evaluation, ScoreOptions, evaluate
from .match import align
from .predictions import read_predictions
from .truth import read_truth


@dataclass(frozen=True)
class ScoreRequest:
    """What to score against what (the ``score`` command's flags)."""

    truth: str  # node database, folder, central store, labels file or postgresql:// URL
    predictions: str | None = None  # CSV, JSON lines or SQLite (FILE?table=NAME)
    baselines: Sequence[str] = ()  # names in BASELINES
    options: ScoreOptions = field(default_factory=ScoreOptions)


def score_detectors(request: ScoreRequest) -> list[Evaluation]:
    """Every detector's evaluation, the predictions first; ``InputError`` for a bad request."""
    _validate(request)
    truth = read_truth(request.truth, channels=bool(request.baselines))
    if len(truth) == 0:
        raise InputError([f"--truth {request.truth}: no readings"])
    evaluations = []
    scored = None
    if request.predictions is not None:
        predictions = read_predictions(request.predictions)
        if request.options.threshold is not None and predictions.score is None:
            raise InputError(
                [f"--threshold: {predictions.source} has no score column to apply it to "
                 "(its flags are scored as they are)"]
            )  # fmt: skip
        tolerance = round(request.options.tolerance_seconds * 1_000_000)
        aligned = align(truth, predictions, tolerance)
        if not aligned.predicted.any():
            counts = aligned.overall
            raise InputError(
                [f"--predictions {predictions.source}: none of its {len(predictions):,} rows "
                 f"matched a reading ({counts['unknown_sensor']:,} name a sensor the truth does "
                 f"not have, {counts['no_reading']:,} are further than "
                 f"{request.options.tolerance_seconds:g} s from every reading of their sensor); "
                 "check the sensor ids and timestamps, or widen --tolerance"]
            )  # fmt: skip
        evaluations.append(evaluate(truth, aligned, request.options, predictions.source))
        scored = aligned.scored
    for name in request.baselines:
        aligned = run_baseline(name, truth, scored)
        options = replace(request.options, threshold=None)  # a baseline flags by its own rule
        evaluations.append(evaluate(truth, aligned, options, f"baseline {name}"))
    return evaluations


def _validate(request: ScoreRequest) -> None:
    problems = []
    if request.predictions is None and not request.baselines:
        problems.append(
            "expected --predictions FILE, --baseline NAME, or both "
            f"(baselines: {', '.join(BASELINES)})"
        )
    for name in request.baselines:
        if name not in BASELINES:
            problems.append(f"--baseline {name!r}: expected one of {', '.join(BASELINES)}")
    ranges = request.options.ranges
    if not 0 <= ranges.alpha <= 1:
        problems.append(f"--range-alpha: expected a weight between 0 and 1 (got {ranges.alpha})")
    if request.options.tolerance_seconds < 0:
        problems.append("--tolerance: expected a duration of 0 or more")
    if problems:
        raise InputError(problems)
