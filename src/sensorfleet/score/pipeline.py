"""Scoring from start to finish: what ``sensorfleet score`` calls.

``score_detectors`` reads the truth once, then scores the predictions file
(if any) and each baseline against it; the predictions come first in the
returned list, and the baselines are scored on the same span of readings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import InputError
from .baselines import BASELINES, run_baseline
from .evaluate import Evaluation, ScoreOptions, evaluate
from .match import align
from .predictions import Predictions, read_predictions
from .truth import Truth, read_truth


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
    truth, predictions = read_inputs(request.truth, request.predictions, bool(request.baselines))
    evaluations = []
    scored = None
    if predictions is not None:
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


def read_inputs(
    truth_source: str,
    predictions_source: str | None,
    channels: bool = False,
    seconds: dict[str, float] | None = None,
) -> tuple[Truth, Predictions | None]:
    """The truth and the predictions, read side by side: reading the truth is mostly
    SQLite's work and decoding mostly numpy's, both done without holding Python's lock,
    so the two readers share the machine's cores. A problem with the truth is reported
    first, as if it had been read alone. ``seconds`` receives how long each reader took."""
    timings = {} if seconds is None else seconds
    background = None
    if predictions_source is not None:
        background = _Background(lambda: read_predictions(predictions_source))
    started = time.perf_counter()
    truth = read_truth(truth_source, channels)
    timings["read_truth"] = time.perf_counter() - started
    if len(truth) == 0:
        raise InputError([f"--truth {truth_source}: no readings"])
    if background is None:
        return truth, None
    predictions = background.result()
    timings["read_predictions"] = background.seconds
    return truth, predictions


class _Background:
    """A call run in a daemon thread: an error elsewhere need not wait for it to end."""

    def __init__(self, call: Callable[[], Predictions]) -> None:
        self._call = call
        self._value: Predictions | None = None
        self._error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="score-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._value = self._call()
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc
        self.seconds = time.perf_counter() - started

    def result(self) -> Predictions:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


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
