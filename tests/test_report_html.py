"""The HTML report opened in a real browser: headless Chromium (Debian's ``chromium``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report import FLEET, report, simulate, write_fleet, write_report_config

WIDTH, HEIGHT = 1280, 2600


def chromium() -> str:
    """The Chromium binary; missing fails under CI and skips elsewhere."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium not found: install Debian's chromium (scripts/setup.sh --test)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def browse(html: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *flags, html.resolve().as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HTML report of the demo fleet over six simulated hours, two sensors plotted."""
    folder = tmp_path_factory.mktemp("report-html")
    config = write_report_config(folder / "config.yaml")
    db = simulate(folder / "fleet.db", config, write_fleet(folder / "ids", FLEET), backfill="6h")
    out = folder / "report.html"
    sensors = ["--sensor", "FACTORY_1_OLD", "--sensor", "OUTDOOR_1", "--window", "2h"]
    result = report(str(db), "--config", str(config), "--html", str(out), *sensors)
    assert result.returncode == 0, result.stderr
    assert f"report: wrote {out}" in result.stderr
    return out


def test_html_opens_in_chromium_with_its_plots(html_report: Path, tmp_path: Path) -> None:
    """Chromium renders the report: six charts (firmware, types, manufacturer, location, two sensors) with drawn content."""  # noqa: E501
    result = browse(html_report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    charts = re.findall(r"<svg\b.*?</svg>", dom, flags=re.S)
    assert len(charts) == 6
    assert all("<path" in chart for chart in charts)
    # The sensor plots embed their dense lines as images inside the SVG.
    assert sum("<image" in chart for chart in charts) == 2
    assert "Anomaly rate by firmware" in dom and "Anomaly types by model" in dom
    captions = re.findall(r"<figcaption><b>([^<]+)</b>", dom)
    assert captions == ["FACTORY_1_OLD", "OUTDOOR_1"]


def test_html_screenshot_is_a_real_picture(html_report: Path, tmp_path: Path) -> None:
    """A headless screenshot of the report is a full-size, colourful, mostly non-blank image."""
    shot = tmp_path / "report.png"
    result = browse(
        html_report, tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    pixels = np.asarray(image.resize((WIDTH // 4, HEIGHT // 4)), dtype=np.int32).reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    assert colours > 200  # charts, badges and text, not a flat page
    background = int((pixels.min(axis=1) > 235).sum())
    assert background < 0.9 * len(pixels)
    # The chart blue of the observed bars (#3b82f6) is on the page.
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    assert ((abs(r - 59) < 20) & (abs(g - 130) < 25) & (b > 200)).any()


def test_html_needs_no_network(html_report: Path) -> None:
    """The file is self-contained: no scripts, stylesheets, images or fonts fetched from afar."""
    text = html_report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text and "<link" not in text
    # Only XML namespace identifiers mention http; nothing is loaded by URL.
    references = re.findall(r'(?:src|href)\s*=\s*"([^"#][^"]*)"', text)
    assert all(not ref.startswith(("http:", "https:", "//")) for ref in references), references
    assert "url(http" not in text and "@import" not in text


def test_unknown_sensor_and_unwritable_html_are_refused_before_reading(tmp_path: Path) -> None:
    """A --sensor with no readings, or an --html that cannot be written, fails before the report."""
    config = write_report_config(tmp_path / "config.yaml")
    db = simulate(tmp_path / "one.db", config, write_fleet(tmp_path / "ids", FLEET[:1]), "1h")
    out = tmp_path / "r.html"
    wanted = ["--sensor", FLEET[0]["id"], "--sensor", "NOPE"]
    result = report(str(db), "--config", str(config), "--html", str(out), *wanted)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: --sensor NOPE: no readings of this sensor in the sources"]
    assert result.stdout == "" and not out.exists()  # refused before the long read
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere: nothing to refuse
            unwritable = report(str(db), "--html", str(locked / "r.html"))
            assert unwritable.returncode == 2 and unwritable.stdout == ""
            assert f"error: --html {locked / 'r.html'}: cannot write (Permission denied)" in (
                unwritable.stderr
            )
    finally:
        locked.chmod(0o700)
    missing_folder = report(str(db), "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert missing_folder.returncode == 2
    assert "does not exist" in missing_folder.stderr
    (tmp_path / "taken").mkdir()
    folder = report(str(db), "--html", str(tmp_path / "taken"))
    assert folder.returncode == 2 and folder.stdout == ""
    assert f"error: --html {tmp_path / 'taken'}: cannot write (Is a directory)" in folder.stderr
    assert "Traceback" not in folder.stderr and not list(tmp_path.glob(".*.tmp"))


def _series_captions(html: str) -> list[tuple[str, datetime, datetime]]:
    """(sensor, first, last) of every plotted sensor's caption."""
    found = re.findall(
        r"<b>([^<]+)</b> <span class=\"note\">[^<]*? readings from (\S+ \S+) to (\S+ \S+) UTC",
        html,
    )
    stamp = "%Y-%m-%d %H:%M"
    return [
        (name, datetime.strptime(a, stamp), datetime.strptime(b, stamp)) for name, a, b in found
    ]


def test_sensor_charts_say_what_span_they_cover(html_report: Path) -> None:
    """The over-time heading names the window, and each chart gives its first and last time."""
    html = html_report.read_text()
    assert "Sensors over time: the last 2h before each sensor&#x27;s last reading" in html
    captions = _series_captions(html)
    assert [name for name, _, _ in captions] == ["FACTORY_1_OLD", "OUTDOOR_1"]
    for _, first, last in captions:
        assert timedelta(hours=1, minutes=55) <= last - first <= timedelta(hours=2)


def test_window_all_plots_the_whole_history(html_report: Path) -> None:
    """`--window all` plots the six simulated hours and says so in the heading."""
    folder = html_report.parent
    out = folder / "all.html"
    result = report(
        str(folder / "fleet.db"), "--config", str(folder / "config.yaml"), "--html", str(out),
        "--sensor", "OUTDOOR_1", "--window", "all",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert "Sensors over time: each sensor&#x27;s whole history" in html
    [(_, first, last)] = _series_captions(html)
    assert timedelta(hours=5, minutes=55) <= last - first <= timedelta(hours=6)
