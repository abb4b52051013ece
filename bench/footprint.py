"""Footprint of one live node at 1 reading/s: peak memory and CPU.

Measured against the fixed cost of an interpreter that only imports the
node, so the figure shows what running adds.

    python -m bench.footprint [--seconds 60] [--smoke]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ._common import parser, save
from ._process import ROOT, baseline_rss_mb, run_node, write_config


def run(seconds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_config(work / "config.yaml", "data/node.db")
        measured = run_node(
            [
                "--identity",
                str(ROOT / "node_identity.json"),
                "--run-time",
                str(seconds),
                "--seed",
                "1",
            ],
            work,
        )
        if measured.exit_status != 0:
            raise SystemExit(f"footprint: node failed:\n{measured.stderr[-2000:]}")
        fixed = baseline_rss_mb(work)
    return {
        "readings_per_second": 1,
        "seconds": seconds,
        "peak_rss_mb": round(measured.peak_rss_mb, 1),
        "interpreter_with_imports_rss_mb": round(fixed, 1),
        "cpu_seconds": round(measured.cpu_seconds, 2),
        "cpu_pct_of_one_core": round(100 * measured.cpu_cores, 2),
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--seconds", type=int, default=60)
    options = args.parse_args()
    result = run(3 if options.smoke else options.seconds)
    path = save("footprint", result, options.out)
    print(
        f"footprint: peak {result['peak_rss_mb']} MB (imports alone "
        f"{result['interpreter_with_imports_rss_mb']} MB), CPU "
        f"{result['cpu_pct_of_one_core']}% of one core  → {path}"
    )


if __name__ == "__main__":
    main()
