"""``sensorfleet score`` end to end: real node files, real subprocesses, exit statuses."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import ROOT, clean_env, write_config

postgres_server = servers.postgres_server
postgres_url = servers.postgres_url

IDENTITIES = ROOT / "identities"
START = "2024-03-04T00:00:00Z"


def sensorfleet(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sensorfleet ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def backfill(folder: Path, duration: str, rate: float = 1.0) -> Path:
    """The four shipped demo identities backfilled into one database by the CLI."""
    config = write_config(folder / "config.yaml")
    db = folder / "fleet.db"
    done = sensorfleet(
        "run", "--config", str(config), "--identity", str(IDENTITIES), "--db", str(db),
        "--backfill", duration, "--start", START, "--seed", "42",
        "--readings-per-second", str(rate), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return db


def write_predictions(db: Path, path: Path, flag: str, score: str | None = None) -> Path:
    """A CSV of one prediction per reading; ``flag``/``score`` are SQL over the row."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            f"SELECT sensor_id, timestamp, {flag}, {score or 'NULL'} FROM sensor_readings"
        ).fetchall()
    header = "sensor_id,timestamp,flag" + (",score" if score else "")
    lines = [f"{s},{t},{f}" + (f",{v}" if score else "") for s, t, f, v in rows]
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hours of the demo fleet at one reading per second."""
    return backfill(tmp_path_factory.mktemp("score-fleet"), "3h")


def score_json(*args: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    done = sensorfleet("score", *args, "--format", "json", cwd=cwd)
    return done.returncode, json.loads(done.stdout) if done.stdout else {}, done.stderr


def test_perfect_flags_score_one(fleet: Path, tmp_path: Path) -> None:
    """Flags equal to the labels give 1.0 for every precision, recall and F1, overall and
    per type, model and firmware; without scores the AUCs are null; nothing unmatched."""
    predictions = write_predictions(fleet, tmp_path / "p.csv", "anomaly_flag")
    status, result, stderr = score_json(
        "--truth", str(fleet), "--predictions", str(predictions), cwd=tmp_path
    )
    assert status == 0, stderr
    overall = result["overall"]
    for kind in ("point", "range"):
        assert {k: overall[kind][k] for k in ("precision", "recall", "f1")} == {
            "precision": 1.0, "recall": 1.0, "f1": 1.0
        }  # fmt: skip
    assert overall["roc_auc"] is None and overall["pr_auc"] is None
    assert set(overall["unmatched"].values()) == {0}
    assert overall["detection_delay"]["missed"] == 0
    assert overall["false_alarms"]["count"] == 0
    for dimension in ("by_anomaly_type", "by_model", "by_firmware"):
        assert result[dimension], dimension
        for group in result[dimension].values():
            assert group["range"]["f1"] == 1.0 and group["point"]["f1"] == 1.0
            assert set(group["unmatched"]) == set(overall["unmatched"])
            assert group["unmatched"]["unknown_sensor"] is None and group["roc_auc"] is None
    assert set(result["by_firmware"]) == {"1.3", "1.4"}
    assert result["baselines"] == {}


def test_all_zero_flags_and_the_gate(fleet: Path, tmp_path: Path) -> None:
    """Flagging nothing gives recall 0; --fail-under range.f1=0.6 then exits 3 with one
    line naming the metric, and a gate that is met exits 0."""
    predictions = write_predictions(fleet, tmp_path / "zero.csv", "0")
    status, result, _ = score_json("--truth", str(fleet), "--predictions", str(predictions),
                                   cwd=tmp_path)  # fmt: skip
    assert status == 0
    assert result["overall"]["point"]["recall"] == 0.0
    assert result["overall"]["range"]["recall"] == 0.0
    gated = sensorfleet("score", "--truth", str(fleet), "--predictions", str(predictions),
                        "--fail-under", "range.f1=0.6", cwd=tmp_path)  # fmt: skip
    assert gated.returncode == 3
    assert gated.stderr.strip().splitlines() == [
        f"score: {predictions}: range.f1 = 0.0000, below the required 0.6"
    ]
    perfect = write_predictions(fleet, tmp_path / "p.csv", "anomaly_flag")
    passed = sensorfleet("score", "--truth", str(fleet), "--predictions", str(perfect),
                         "--fail-under", "range.f1=0.6", "--fail-under", "point.recall=1",
                         cwd=tmp_path)  # fmt: skip
    assert passed.returncode == 0, passed.stderr


def test_scores_give_auc_and_an_html_page(fleet: Path, tmp_path: Path) -> None:
    """Scores that rank every anomaly first give ROC-AUC and PR-AUC 1.0, and --html writes
    a self-contained page with the precision-recall chart and the breakdowns."""
    predictions = write_predictions(
        fleet, tmp_path / "s.csv", "anomaly_flag", "anomaly_flag + (id % 7) / 10.0"
    )
    page = tmp_path / "score.html"
    done = sensorfleet(
        "score", "--truth", str(fleet), "--predictions", str(predictions),
        "--baseline", "rolling-zscore", "--html", str(page), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Overall" in done.stdout and "baseline rolling-zscore" in done.stdout
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert "Precision and recall over every threshold" in text
    assert "By anomaly type" in text and "http" not in text.split("<svg")[0]
    _, result, _ = score_json("--truth", str(fleet), "--predictions", str(predictions),
                              cwd=tmp_path)  # fmt: skip
    assert result["overall"]["roc_auc"] == 1.0 and result["overall"]["pr_auc"] == 1.0


def test_central_stores_score_like_the_node_file(
    fleet: Path, tmp_path: Path, postgres_url: str
) -> None:
    """The central SQLite and PostgreSQL stores that 'sensorfleet sync' fills give the same
    scores as the node file they came from."""
    central = tmp_path / "central.db"
    for index, sink in enumerate((f"sqlite:///{central}", postgres_url)):
        node = tmp_path / f"node{index}.db"  # a fresh copy: a sync marks the rows it sent
        shutil.copy(fleet, node)
        synced = sensorfleet("sync", "--once", "--sink", sink, str(node), cwd=tmp_path)
        assert synced.returncode == 0, synced.stderr[-2000:]
    predictions = write_predictions(
        fleet, tmp_path / "s.csv", "anomaly_flag * (id % 3 > 0)", "anomaly_flag + (id % 7) / 10.0"
    )
    results = []
    for truth in (str(node), str(central), postgres_url):
        status, result, stderr = score_json("--truth", truth, "--predictions", str(predictions),
                                            cwd=tmp_path)  # fmt: skip
        assert status == 0, stderr
        results.append({k: v for k, v in result.items() if k != "truth"})
    assert results[0]["overall"]["range"]["recall"] < 1
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--predictions", "{missing}"], "--predictions {missing}: no such file"),
        (["--predictions", "{nocols}"], "--predictions {nocols}: missing score or flag; expected"),
        (
            ["--predictions", "{p}", "--fail-under", "range.f2=0.5"],
            "--fail-under 'range.f2=0.5': expected METRIC=VALUE with METRIC one of",
        ),
        (
            ["--predictions", "{p}", "--fail-under", "range.f1"],
            "--fail-under 'range.f1': expected a value between 0 and 1",
        ),
        (
            ["--predictions", "{p}", "--tolerance", "soon"],
            "--tolerance: expected a duration such as 90s",
        ),
        (["--baseline", "magic"], "--baseline 'magic': expected one of rolling-zscore, isolation"),
        ([], "expected --predictions FILE, --baseline NAME, or both"),
        (["--predictions", "{p}", "--threshold", "0.5"], "--threshold: {p} has no score column"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    fleet: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    """Mistakes a user can make end with exit 2 and one line naming the flag or file."""
    p = write_predictions(fleet, tmp_path / "p.csv", "anomaly_flag")
    nocols = tmp_path / "nocols.csv"
    nocols.write_text("sensor_id,timestamp,probability\nX,2024-03-04T00:00:00Z,0.5\n")
    names = {"missing": str(tmp_path / "missing.csv"), "nocols": str(nocols), "p": str(p)}
    filled = [a.format(**names) for a in args]
    done = sensorfleet("score", "--truth", str(fleet), *filled, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert expected.format(**names) in lines[0]


def test_a_folder_of_databases_and_a_zero_tolerance(fleet: Path, tmp_path: Path) -> None:
    """A folder holding the node file is a truth source like the file itself, and a
    tolerance written 0.0s means exact matching."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(fleet, folder / "fleet.db")
    predictions = write_predictions(fleet, tmp_path / "p.csv", "anomaly_flag * (id % 2)")
    args = ("--predictions", str(predictions), "--tolerance", "0.0s")
    _, from_folder, _ = score_json("--truth", str(folder), *args, cwd=tmp_path)
    _, from_file, _ = score_json("--truth", str(fleet), *args, cwd=tmp_path)
    assert from_folder["overall"] == from_file["overall"]
    assert from_file["parameters"]["tolerance_seconds"] == 0.0


def test_unreadable_truth_is_one_line(tmp_path: Path) -> None:
    """A truth file that is not a database or a labels file is exit 2, one line."""
    bogus = tmp_path / "notes.db"
    bogus.write_text("hello")
    done = sensorfleet("score", "--truth", str(bogus), "--baseline", "rolling-zscore",
                       cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: --truth {bogus}: not an SQLite database"]


@pytest.mark.slow
def test_a_week_of_the_demo_fleet_against_both_baselines(tmp_path: Path) -> None:
    """The four shipped identities backfilled for 7 days (at 0.2 readings per second, to
    keep the test near a minute) and scored with both baselines through the CLI: both beat
    chance on ROC-AUC and detect most episodes, and the JSON holds both."""
    pytest.importorskip("sklearn")
    db = backfill(tmp_path, "7d", rate=0.2)
    status, result, stderr = score_json(
        "--truth", str(db), "--baseline", "rolling-zscore", "--baseline", "isolation",
        cwd=tmp_path,
    )  # fmt: skip
    assert status == 0, stderr
    assert result["detector"] == "baseline rolling-zscore"
    assert list(result["baselines"]) == ["baseline isolation"]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    for scored in (result, result["baselines"]["baseline isolation"]):
        overall = scored["overall"]
        assert overall["readings"] == rows == 4 * 7 * 86400 // 5
        assert overall["roc_auc"] > 0.6
        delay = overall["detection_delay"]
        assert delay["detected"] > delay["missed"]
        assert 0 < overall["range"]["f1"] < 1
        assert set(scored["by_anomaly_type"]) == {
            "spike", "trend", "pattern", "noise", "missing_data"
        }  # fmt: skip
