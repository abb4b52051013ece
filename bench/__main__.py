"""Run every benchmark, then write ``results/<name>.json`` and ``results/SUMMARY.md``.

    python -m bench [--smoke] [--only NAME ...] [--out-dir DIR]

Each benchmark runs in its own process so one cannot skew another. Timings
never fail the run; a benchmark that crashes does (exit 1), so a smoke run in
CI proves they all still work.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._common import RESULTS, machine

# Benchmark modules in run order, with the figures their summary line shows.
BENCHMARKS: tuple[str, ...] = (
    "backfill",
    "pacing",
    "footprint",
    "density",
    "reload",
    "sync",
    "latency",
)


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def _run(name: str, smoke: bool, out: Path) -> bool:
    command = [sys.executable, "-m", f"bench.{name}", "--out", str(out)]
    if smoke:
        command.append("--smoke")
    print(f"== bench.{name}{' (smoke)' if smoke else ''}", flush=True)
    return subprocess.run(command, check=False).returncode == 0


def _line(name: str, r: dict[str, Any]) -> list[str]:
    """Markdown rows: the figure, the limit it is measured against, the verdict."""
    if name == "backfill":
        return [
            f"| backfill, one node | {r['backfill_rows_per_s']:,} rows/s | raw SQLite insert "
            f"ceiling {r['ceiling_rows_per_s']:,} rows/s (same schema, pragmas, batch) | "
            f"ratio **{r['ratio']}** (target ≥ {r['target_ratio']}) |"
        ]
    if name == "pacing":
        return [
            f"| live pacing {p['readings_per_second']}/s | {p['rows_written']:,} rows in "
            f"{p['run_seconds']} s | expected {p['rows_expected']:,} | "
            f"{p['deviation_pct']:+}% |"
            for p in r["rates"]
        ]
    if name == "footprint":
        return [
            f"| one live node at 1/s | peak {r['peak_rss_mb']} MB RSS, "
            f"{r['cpu_pct_of_one_core']}% of one core | interpreter + imports alone "
            f"{r['interpreter_with_imports_rss_mb']} MB | over {r['seconds']} s |"
        ]
    if name == "density":
        return [
            f"| density, one process | {r['sensors']:,} sensors × 1/s for {r['seconds']} s, "
            f"{r['rows_total']:,} rows; {r['rss_kb_per_sensor']} KB and "
            f"{r['cpu_cores_used']} cores | {r['cpu_cores_available']} cores; every sensor "
            f"within 1 % of {r['rows_expected_per_sensor']} rows | "
            f"{'all' if r['all_sensors_within_1pct'] else 'NOT all'} within 1 %, "
            f"{r['timestamps_off_schedule']} off-schedule timestamps, newest-row lag p95 "
            f"{r['newest_row_lag_p95_s']} s |"
        ]
    if name == "reload":
        return [
            f"| hot reload, file write → first row with new values | p95 "
            f"{r['events_applied_p95_ms']} ms (change events) | target p95 < "
            f"{r['target_p95_ms']:.0f} ms; polling baseline p95 {r['polling_applied_p95_ms']} ms "
            f"| {r['edits_per_mode']} edits per mode |"
        ]
    if name == "sync":
        return [
            f"| sync drain into central SQLite, nodes writing | {r['drain_rows_per_s']:,} rows/s "
            f"| target ≥ {r['drain_target_rows_per_s']:,}; plain SQL copy "
            f"{r['drain_baseline_rows_per_s']:,} rows/s | ratio {r['drain_ratio_to_baseline']} "
            "(target ≥ 0.5) |",
            *(
                [
                    f"| sync into Kafka (tansu), nodes writing | {r['kafka_rows_per_s']:,} rows/s "
                    f"| raw confluent-kafka produce of the same rows "
                    f"{r['kafka_baseline_rows_per_s']:,} rows/s | ratio "
                    f"{r['kafka_ratio_to_baseline']} (target ≥ 0.5) |"
                ]
                if r.get("kafka_rows_per_s")
                else []
            ),
            f"| sync poll, 100 unsynced rows | median {r['poll_median_ms']} ms in "
            f"{r['poll']['table_rows']:,} rows | target < {r['poll_target_ms']} ms; without the "
            f"partial index {r['poll_baseline_scan_ms']} ms | |",
        ]
    if name == "latency":
        return [
            f"| live latency, reading timestamp → {r.get('sink', 'kafka')} reader, {r['nodes']} "
            "nodes × "
            f"{r['readings_per_second_per_node']:g}/s | p50 {r['p50_ms']} ms, p95 "
            f"{r['p95_ms']} ms, max {r['max_ms']} ms | target p95 < {r['target_p95_ms']} ms "
            f"(stretch {r['stretch_p95_ms']}); polling every 5 s: p95 {r['polling_p95_ms']} ms "
            f"| defaults, {r['seconds']:g} s window |"
        ]
    figures = ", ".join(
        f"{k}={v}"
        for k, v in r.items()
        if k not in ("benchmark", "measured_at", "machine") and not isinstance(v, dict | list)
    )
    return [f"| {name} | {figures} | see `bench/{name}.py` | |"]


def summary(results: dict[str, dict[str, Any]], smoke: bool) -> str:
    facts = machine()
    lines = [
        "# Benchmark results",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{' (smoke run)' if smoke else ''} on "
        f"{facts['cpus']} CPUs, Python {facts['python']}, {facts['platform']}.",
        "Each figure stands beside the limit it was measured against in the same run.",
        "",
        "| benchmark | figure | measured against | result |",
        "| --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        lines.extend(_line(name, result))
    return "\n".join(lines) + "\n"


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--smoke", action="store_true", help="run each benchmark briefly")
    args.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    args.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go")
    options = args.parse_args()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    failed = []
    for name in options.only or BENCHMARKS:
        if not _available(name):
            print(f"== bench.{name}: not present, skipped")
            continue
        out = options.out_dir / f"{name}.json"
        if _run(name, options.smoke, out):
            results[name] = json.loads(out.read_text())
        else:
            failed.append(name)
    (options.out_dir / "SUMMARY.md").write_text(summary(results, options.smoke))
    print(f"summary → {options.out_dir / 'SUMMARY.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
