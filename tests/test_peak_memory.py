"""A measured child's peak memory is its own, whatever the process measuring it once held."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, clean_env

# Grows to 300 MiB, frees it, then measures two children: one that only starts
# an interpreter, one that touches 100 MiB.
MEASURE_AFTER_A_BIG_PEAK = """
import json, sys
from bench._process import run_measured
held = bytearray(300 * 1024 * 1024)
for i in range(0, len(held), 4096):
    held[i] = 1
del held
fill = "b = bytearray(100 * 1024 * 1024)\\nfor i in range(0, len(b), 4096): b[i] = 1"
peaks = [run_measured([sys.executable, "-c", code]).peak_rss_kib for code in ("pass", fill)]
print(json.dumps(peaks))
"""


def test_a_child_is_measured_without_the_parents_peak() -> None:
    """After the measuring process held 300 MiB, an idle interpreter still measures under 60 MiB and a 100 MiB one over 100 MiB."""  # noqa: E501
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_AFTER_A_BIG_PEAK],
        cwd=ROOT, env=clean_env({"PYTHONPATH": str(ROOT)}),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    idle, filled = json.loads(result.stdout)
    assert idle < 60 * 1024, idle
    assert 100 * 1024 < filled < 200 * 1024, filled
