"""The report as a library call: ``produce_report`` in-process on files the node wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import query
from test_report import FLEET, report, simulate, write_fleet, write_report_config

from sensorfleet.errors import InputError
from sensorfleet.report.pipeline import ReportOptions, produce_report, write_html
from sensorfleet.report.table import ReportSource


@pytest.fixture(scope="module")
def node_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two sensors, three simulated hours written by ``sensorfleet run``, and their config."""
    folder = tmp_path_factory.mktemp("report-pipeline")
    config = write_report_config(folder / "config.yaml")
    identities = write_fleet(folder / "ids", [FLEET[0], FLEET[3]])
    return simulate(folder / "node.db", config, identities, backfill="3h", seed=5), config


class Recorder:
    """A ``ReadProgress`` that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def start(self, total: int) -> None:
        self.calls.append(("start", total))

    def update(self, index: int, source: ReportSource, stage: str, fraction: float) -> None:
        self.calls.append(("update", index, source.label, stage, fraction))

    def finish(self) -> None:
        self.calls.append(("finish",))


def test_produce_report_returns_what_the_command_prints(node_db: tuple[Path, Path]) -> None:
    """In-process, the report of a node file counts its rows as SQL does and renders the same
    JSON that ``sensorfleet report --format json`` prints."""
    db, config = node_db
    produced = produce_report(ReportOptions([str(db)], config=str(config), format="json"))
    rows, anomalies = query(db, "SELECT COUNT(*), SUM(anomaly_flag) FROM sensor_readings")[0]
    assert (produced.report.rows, produced.report.anomalies) == (rows, anomalies)
    assert produced.report.expected_from == str(config)
    assert produced.problems == [] and produced.html is None
    printed = report(str(db), "--config", str(config), "--format", "json")
    assert printed.returncode == 0, printed.stderr
    assert produced.text == printed.stdout


def test_unusable_sources_and_progress_reach_the_caller(
    node_db: tuple[Path, Path], tmp_path: Path
) -> None:
    """A missing source is a problem line while the others are reported, and the progress
    object hears the start, each source's updates up to 100 %, and the end."""
    db, _ = node_db
    missing = tmp_path / "missing.db"
    recorder = Recorder()
    produced = produce_report(ReportOptions([str(db), str(missing)]), recorder)
    assert produced.problems == [f"{missing}: no such file or folder"]
    assert produced.report.expected_from == "the built-in defaults"
    assert recorder.calls[0] == ("start", 1) and recorder.calls[-1] == ("finish",)
    assert recorder.calls[-2] == ("update", 0, str(db), "done", 1.0)


def test_bad_options_raise_one_input_error_listing_each(node_db: tuple[Path, Path]) -> None:
    """Options no command line could give are refused too, one line per problem."""
    db, _ = node_db
    with pytest.raises(InputError) as raised:
        produce_report(ReportOptions([str(db)], format="xml", confidence=2.0))
    assert raised.value.problems == [
        "--format: expected one of text, json, csv, markdown (got 'xml')",
        "--confidence: expected a level between 0 and 1, e.g. 0.95 (got 2.0)",
    ]


def test_write_html_writes_the_plots_after_the_text(
    node_db: tuple[Path, Path], tmp_path: Path
) -> None:
    """The HTML report is written by ``write_html`` once the text is out, with the sensor
    asked for plotted, and the result names the file and its size."""
    db, config = node_db
    out = tmp_path / "report.html"
    options = ReportOptions([str(db)], config=str(config), html=str(out), sensors=["OUTDOOR_1"])
    produced = produce_report(options)
    assert not out.exists() and [s.sensor_id for s in produced.report.series] == ["OUTDOOR_1"]
    write_html(produced, str(out))
    assert produced.problems == []
    assert produced.html == out and produced.html_bytes == out.stat().st_size
    assert "<figcaption><b>OUTDOOR_1</b>" in out.read_text()
