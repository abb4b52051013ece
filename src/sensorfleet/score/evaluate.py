"""Every metric for the whole fleet and for each anomaly type, model and firmware.

A breakdown scores a subset of the readings as if the others were not there:

- by model (or firmware): the readings that carried that model (firmware);
- by type: the normal readings and the anomalies of that type, so the other
  types' readings neither help nor hurt (a run of flags is cut where they were
  left out).

Flags come from the predictions' ``flag`` column, or else from ``score >=
threshold``, with ``--threshold`` or, lacking one, the threshold with the best
point-wise F1 over the whole fleet (an optimistic choice the output names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .columns import Bools, Floats, Ints
from .match import OVERALL_ONLY, Aligned
from .points import PRF, BestF1, average_precision, best_f1, curve, point_prf, pr_points, roc_auc
from .ranges import RangeParams, range_prf, runs
from .rul import RulError, rul_error
from .truth import NORMAL, Truth

NORMAL_LABEL = "normal"
US_PER_DAY = 86_400e6


@dataclass(frozen=True)
class ScoreOptions:
    """How to score: matching tolerance, threshold, range parameters, RUL unit."""

    tolerance_seconds: float = 0.0
    threshold: float | None = None
    ranges: RangeParams = field(default_factory=RangeParams)
    rul_unit_seconds: float = 3600.0


@dataclass(frozen=True)
class Delay:
    """How late each episode was first flagged, from its first reading."""

    detected: int
    missed: int
    median_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True)
class Confusion:
    """Readings by true kind (rows) and predicted fault (columns)."""

    true_labels: list[str]
    predicted_labels: list[str]
    counts: list[list[int]]


@dataclass
class GroupScore:
    """Every metric over one set of readings."""

    readings: int
    anomalous_readings: int
    episodes: int
    point: PRF
    point_counts: dict[str, int]
    range: PRF
    predicted_ranges: int
    roc_auc: float | None
    pr_auc: float | None
    best_f1: BestF1 | None
    delay: Delay
    false_alarms: int
    sensor_days: float
    unmatched: dict[str, int | None]
    confusion: Confusion | None = None
    rul: RulError | None = None
    pr_curve: list[tuple[float, float]] = field(default_factory=list)

    @property
    def false_alarms_per_sensor_day(self) -> float | None:
        return self.false_alarms / self.sensor_days if self.sensor_days else None


@dataclass
class Evaluation:
    """One detector scored against one truth."""

    detector: str
    truth: str
    flags_from: str  # "flag column", "--threshold", "best point F1"
    threshold: float | None
    options: ScoreOptions
    overall: GroupScore
    breakdowns: dict[str, dict[str, GroupScore]]


def evaluate(truth: Truth, aligned: Aligned, options: ScoreOptions, detector: str) -> Evaluation:
    """Score ``aligned`` against ``truth``: overall and for every breakdown."""
    scored = aligned.scored
    base = np.flatnonzero(scored)
    ranked = None
    if aligned.score is not None:
        order = base[np.argsort(-aligned.score[base], kind="stable")]
        ranked = (order, aligned.score[order], truth.anomaly[order])
    threshold, flags_from = options.threshold, "flag column"
    if aligned.flag is not None and threshold is None:
        flag = aligned.flag
    else:
        assert aligned.score is not None  # the reader requires a score or a flag
        if threshold is None:
            assert ranked is not None
            best = best_f1(curve(ranked[1], ranked[2]))
            threshold = best.threshold if best is not None else np.inf
            flags_from = "best point F1"
        else:
            flags_from = "--threshold"
        flag = aligned.score >= threshold
    context = _Context(truth, aligned, flag, ranked, options, _intervals(truth))
    everyone = np.ones(len(truth), dtype=bool)
    overall = context.group(everyone, everyone[: len(base)], overall=True)
    dimension = "fault" if truth.scheme == "fault" else "anomaly_type"
    breakdowns: dict[str, dict[str, GroupScore]] = {dimension: {}, "model": {}, "firmware": {}}
    # Each breakdown's readings in the order of the scores, from codes put in that order
    # once (not a gather of every breakdown's readings).
    in_rank_order = (lambda values: values[ranked[0]]) if ranked is not None else None
    present = np.unique(truth.kind[scored & truth.anomaly])
    kinds = in_rank_order(truth.kind) if in_rank_order and len(present) else None
    for code in present:
        members = ~truth.anomaly | (truth.kind == code)
        ranked_members = None
        if ranked is not None and kinds is not None:
            ranked_members = ~ranked[2] | (kinds == code)
        breakdowns[dimension][truth.kinds[code]] = context.group(members, ranked_members)
    for name, codes, labels in (
        ("model", truth.model, truth.models),
        ("firmware", truth.firmware, truth.firmwares),
    ):
        present = np.unique(codes[scored])
        ranked_codes = in_rank_order(codes) if in_rank_order and len(present) else None
        for code in present:
            ranked_members = None if ranked_codes is None else ranked_codes == code
            breakdowns[name][labels[code]] = context.group(codes == code, ranked_members)
    return Evaluation(
        detector=detector,
        truth=truth.source,
        flags_from=flags_from,
        threshold=None if threshold is None else float(threshold),
        options=options,
        overall=overall,
        breakdowns=breakdowns,
    )


def _intervals(truth: Truth) -> Floats:
    """Each reading's share of time: its sensor's median gap between readings (µs)."""
    bounds = np.searchsorted(truth.sensor, np.arange(len(truth.sensors) + 1))
    steps = np.zeros(len(truth.sensors))
    for code in range(len(truth.sensors)):
        times = truth.time[bounds[code] : bounds[code + 1]]
        if len(times) > 1:
            steps[code] = float(np.median(np.diff(times)))
    return steps[truth.sensor] if len(truth.sensor) else np.zeros(0)


@dataclass
class _Context:
    truth: Truth
    aligned: Aligned
    flag: Bools
    ranked: tuple[Ints, Floats, Bools] | None
    options: ScoreOptions
    interval: Floats

    def group(
        self, members: Bools, ranked_members: Bools | None, overall: bool = False
    ) -> GroupScore:
        """Every metric over the ``members`` (``ranked_members``: the same, in the order of
        the ranked scores)."""
        truth, aligned = self.truth, self.aligned
        mask = members & aligned.scored
        idx = np.flatnonzero(mask)
        actual = truth.anomaly[idx]
        flagged = self.flag[idx]
        point, counts = point_prf(actual, flagged)
        breaks = np.ones(len(idx), dtype=bool)
        if len(idx) > 1:
            sensor = truth.sensor[idx]
            breaks[1:] = (sensor[1:] != sensor[:-1]) | (np.diff(idx) > 1)
        real = runs(actual, breaks, truth.kind[idx])
        predicted = runs(flagged, breaks)
        result = range_prf(real, predicted, self.options.ranges)
        times = truth.time[idx]
        detected = result.detected
        delays = (times[result.first_hit[detected]] - times[real[0][detected]]) / 1e6
        auc = ap = None
        best = None
        pr_curve: list[tuple[float, float]] = []
        if self.ranked is not None:
            _, scores, labels = self.ranked
            assert ranked_members is not None
            if ranked_members.all():
                c = curve(scores, labels)
            else:
                c = curve(scores[ranked_members], labels[ranked_members])
            auc, ap, best = roc_auc(c), average_precision(c), best_f1(c)
            if overall:
                pr_curve = pr_points(c)
        unmatched: dict[str, int | None] = {
            "unknown_sensor": None,
            "no_reading": None,
            "duplicate": int(aligned.duplicates[idx].sum()),
            "nan_score": int(aligned.nan_score[idx].sum()),
            "readings_without_prediction": int((~aligned.predicted[idx]).sum()),
            "readings_outside_span": int((members & ~aligned.scored).sum()),
            "sensors_without_predictions": None,
        }
        if overall:
            unmatched.update({k: aligned.overall[k] for k in OVERALL_ONLY})
        rul = None
        if aligned.rul is not None:
            rul = rul_error(truth.rul[idx], aligned.rul[idx], self.options.rul_unit_seconds)
        return GroupScore(
            readings=len(idx),
            anomalous_readings=int(actual.sum()),
            episodes=len(real[0]),
            point=point,
            point_counts=counts,
            range=result.prf,
            predicted_ranges=result.predicted_ranges,
            roc_auc=auc,
            pr_auc=ap,
            best_f1=best,
            delay=Delay(
                detected=int(detected.sum()),
                missed=int((~detected).sum()),
                median_seconds=float(np.median(delays)) if len(delays) else None,
                p95_seconds=float(np.percentile(delays, 95)) if len(delays) else None,
            ),
            false_alarms=result.false_alarms,
            sensor_days=float(self.interval[idx].sum() / US_PER_DAY),
            unmatched=unmatched,
            confusion=self._confusion(idx),
            rul=rul,
            pr_curve=pr_curve,
        )

    def _confusion(self, idx: Ints) -> Confusion | None:
        fault = self.aligned.fault
        if fault is None:
            return None
        truth = self.truth
        true_names = [NORMAL_LABEL if k == NORMAL else k for k in truth.kinds]
        predicted_names = [NORMAL_LABEL if not f.strip() else f for f in self.aligned.faults]
        columns = list(dict.fromkeys([NORMAL_LABEL, *true_names[1:], *predicted_names]))
        rows = list(dict.fromkeys([NORMAL_LABEL, *true_names[1:]]))
        column_of = np.array([columns.index(n) for n in predicted_names] + [0], dtype=np.int64)
        row_of = np.array([rows.index(n) for n in true_names], dtype=np.int64)
        codes = fault[idx].astype(np.int64)
        codes[codes < 0] = len(predicted_names)  # no prediction: the "normal" column
        cells = row_of[truth.kind[idx]] * len(columns) + column_of[codes]
        counts = np.bincount(cells, minlength=len(rows) * len(columns))
        return Confusion(rows, columns, counts.reshape(len(rows), len(columns)).tolist())
