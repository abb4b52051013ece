"""``sensorfleet score``: grade a detector's predictions against the labelled readings."""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

from ..errors import InputError
from ..node.clock import parse_duration
from ..report.pipeline import check_html, write_page
from ..score.baselines import BASELINES
from ..score.evaluate import ScoreOptions
from ..score.gates import METRICS, failures, parse_gate
from ..score.pipeline import ScoreRequest, score_detectors
from ..score.ranges import BIASES, CARDINALITIES, RangeParams
from ..score.render import FORMATS, render_html, render_json, render_text

# Exit status when a --fail-under gate is not met (2 is a usage error, 1 a runtime one).
EXIT_BELOW_GATE = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score a detector's predictions against the labelled readings",
        description=(
            "Score anomaly predictions (CSV, JSON lines or an SQLite table with sensor_id, "
            "timestamp and a score and/or a 0/1 flag) against the labels in a node database, "
            "a central store or a labels file: point-wise and range-based precision, recall "
            "and F1, ROC-AUC, PR-AUC, detection delay and false alarms, by anomaly type, "
            "model and firmware; compare with baseline detectors."
        ),
    )
    parser.add_argument(
        "--truth",
        required=True,
        metavar="SOURCE",
        help="node database, folder of them, central store (file or postgresql://…), "
        "or labels file (CSV, JSON lines, SQLite; FILE?table=NAME)",
    )
    parser.add_argument(
        "--predictions", metavar="FILE", help="the detector's output (FILE?table=NAME in SQLite)"
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME",
        help=f"also score a reference detector: {', '.join(BASELINES)} (repeatable)",
    )
    parser.add_argument(
        "--tolerance",
        default="0",
        metavar="DURATION",
        help="how far a prediction's timestamp may be from its reading's (default 0: exact; "
        "e.g. 500ms, 1s)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="VALUE",
        help="flag readings whose score is at least this (default: the flag column, else the "
        "threshold with the best point-wise F1)",
    )
    parser.add_argument(
        "--range-alpha",
        type=float,
        default=0.0,
        metavar="A",
        help="weight of merely detecting an episode in range recall, 0 to 1 (default 0)",
    )
    parser.add_argument(
        "--range-cardinality",
        choices=list(CARDINALITIES),
        default="reciprocal",
        help="penalty for an episode split into several detections (default reciprocal)",
    )
    parser.add_argument(
        "--range-bias",
        choices=list(BIASES),
        default="flat",
        help="which part of an episode counts most for range recall (default flat)",
    )
    parser.add_argument(
        "--range-precision-bias",
        choices=list(BIASES),
        default="flat",
        help="the same for range precision, over each flagged run (default flat)",
    )
    parser.add_argument(
        "--rul-unit",
        default="1h",
        metavar="DURATION",
        help="unit of the RUL error in the PHM08 score (default 1h)",
    )
    parser.add_argument(
        "--format", choices=list(FORMATS), default="text", help="stdout format (default text)"
    )
    parser.add_argument("--html", metavar="FILE", help="also write an HTML page with PR curves")
    parser.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help=f"exit {EXIT_BELOW_GATE} if an overall metric is below VALUE (repeatable); "
        f"METRIC: {', '.join(METRICS)}",
    )
    parser.set_defaults(handler=handle)


_ZERO = re.compile(r"0+(\.0*)?(ms|s|m|h|d|w)?")


def _tolerance(text: str) -> float:
    """A duration, where 0 (exact matching) is allowed too."""
    if _ZERO.fullmatch(text.strip().lower()):
        return 0.0
    return parse_duration(text, "--tolerance")


def handle(args: argparse.Namespace) -> int:
    """Flags → request; score; print; check the gates."""
    gates = [parse_gate(text) for text in args.fail_under]
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise InputError([f"--threshold: expected a finite number (got {args.threshold})"])
    options = ScoreOptions(
        tolerance_seconds=_tolerance(args.tolerance),
        threshold=args.threshold,
        ranges=RangeParams(
            alpha=args.range_alpha,
            cardinality=args.range_cardinality,
            recall_bias=args.range_bias,
            precision_bias=args.range_precision_bias,
        ),
        rul_unit_seconds=parse_duration(args.rul_unit, "--rul-unit"),
    )
    check_html(args.html)
    request = ScoreRequest(args.truth, args.predictions, tuple(args.baseline), options)
    evaluations = score_detectors(request)
    sys.stdout.write(
        render_json(evaluations) if args.format == "json" else render_text(evaluations)
    )
    sys.stdout.flush()
    if args.html:
        problem = write_page(args.html, render_html(evaluations))
        if problem:
            sys.stderr.write(f"error: {problem}\n")
            return 2
        sys.stderr.write(f"score: wrote {args.html}\n")
    below = failures(evaluations[0].overall, gates)
    for line in below:
        sys.stderr.write(f"score: {evaluations[0].detector}: {line}\n")
    return EXIT_BELOW_GATE if below else 0
