"""The README stays a first read: short, and its figures are the benchmark results themselves."""

from __future__ import annotations

from bench.__main__ import BEGIN, END, README, figures_table
from bench._common import RESULTS


def test_the_readme_is_a_first_read() -> None:
    """At most 300 lines; reference material lives in docs/."""
    assert len(README.read_text().splitlines()) <= 300


def test_the_readme_figures_are_the_benchmark_results() -> None:
    """The README's figures table is the one `python -m bench` writes from bench/results."""
    text = README.read_text()
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    assert shown == figures_table(RESULTS)
    summary = (RESULTS / "SUMMARY.md").read_text().splitlines()
    assert all(row in summary for row in shown)
