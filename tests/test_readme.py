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


def test_rows_left_out_of_the_readme_are_in_the_summary() -> None:
    """Every row SUMMARY.md alone shows is there, and the README row of its benchmark says
    where to find it, so shortening the README loses no figure."""
    shown = figures_table(RESULTS)
    everything = figures_table(RESULTS, details=True)
    summary = (RESULTS / "SUMMARY.md").read_text().splitlines()
    left_out = [row for row in everything if row not in shown]
    assert left_out, "the README table is expected to leave per-N and per-model rows out"
    assert all(row in summary for row in left_out)
    pointers = [row for row in shown if "bench/results/SUMMARY.md" in row]
    for name in ("containers", "pacing", "backfill, one node, compressor"):
        assert any(name in row for row in pointers), name
