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
    "equipment",
    "pacing",
    "footprint",
    "density",
    "reload",
    "sync",
    "latency",
    "containers",
    "startup",
    "probes",
    "faces",
    "score",
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
            f"ratio **{r['ratio']}** (target ≥ {r['target_ratio']}) "
            f"{'met' if r['ratio'] >= r['target_ratio'] else 'NOT met'}"
            + (
                f"; by CPU time {r['cpu_ratio']}, host idle {r['host_idle_share']:.0%}"
                if "cpu_ratio" in r
                else ""
            )
            + " |"
        ]
    if name == "equipment":
        lead, d = r["models"][0], r["density"]
        others = ", ".join(f"{m['type']} {m['ratio']}" for m in r["models"][1:])
        types = d["types"].replace("=1", "").replace(",", ", ")
        return [
            _equipment_backfill(lead, r)[:-2]
            + (f"; {others} (`bench/results/SUMMARY.md`) |" if others else " |"),
            f"| density, {d['sensors']:,} machines ({types}) in one "
            f"process | each at 1/s for {d['seconds']} s, {d['rows_total']:,} rows; "
            f"{d['rss_kb_per_sensor']} KB and {d['cpu_cores_used']} cores | "
            f"{d['cpu_cores_available']} cores; every machine within 1 % of "
            f"{d['rows_expected_per_sensor']} rows | "
            f"{'all' if d['all_sensors_within_1pct'] else 'NOT all'} within 1 %, "
            f"{d['timestamps_off_schedule']} off-schedule timestamps, newest-row lag p95 "
            f"{d['newest_row_lag_p95_s']} s{'; ' + d['notes'] if d.get('notes') else ''} |",
        ]
    if name == "pacing":
        rates = r["rates"]
        return [
            f"| live pacing {p['readings_per_second']}/s | {p['rows_written']:,} rows in "
            f"{p['run_seconds']} s | expected {p['rows_expected']:,} | "
            f"{p['deviation_pct']:+}%"
            + (
                f"; {', '.join(str(q['readings_per_second']) for q in rates[1:])}/s: "
                f"within {max(abs(q['deviation_pct']) for q in rates[1:])}% "
                "(`bench/results/SUMMARY.md`)"
                if len(rates) > 1
                else ""
            )
            + " |"
            for p in rates[:1]
        ]
    if name == "footprint":
        return [
            f"| one live node at 1/s, shipped config (monitoring, reload) | peak "
            f"{r['peak_rss_idle_mb']} MB RSS idle, {r['peak_rss_mb']} MB after a /metrics "
            f"scrape ({r['rss_anonymous_mb']} MB of it private), "
            f"{r['variants']['image_settings']['peak_rss_mb']} MB as the image runs it (-OO), "
            f"{r['threads']} threads, "
            f"{r['cpu_pct_of_one_core']}% of one core, {r['wakeups_per_second']} wake-ups/s "
            f"| interpreter {r['interpreter_rss_mb']} MB; + numpy "
            f"{r['interpreter_with_numpy_rss_mb']} MB; + the node's imports "
            f"{r['interpreter_with_imports_rss_mb']} MB | target ≤ {r['target_peak_rss_mb']} MB "
            f"{'met' if r['peak_rss_mb'] <= r['target_peak_rss_mb'] else 'not met'}; "
            f"idle window {r['seconds']} s |"
        ]
    if name == "density":
        runs = [("one process", r)]
        if "per_sensor_files" in r:
            runs.append(("one process, one file per sensor", r["per_sensor_files"]))
        rows = _density_rows(runs)
        more = r.get("more_sensors", [])
        if more:
            # The larger fleets' own rows are in SUMMARY.md; the README points there.
            rows[0] = rows[0][: -len(" |")] + (
                "; "
                + ", ".join(
                    f"{m['sensors']:,} sensors: lag p95 {m['newest_row_lag_p95_s']} s, "
                    f"{'all' if m['all_sensors_within_1pct'] else 'NOT all'} within 1 %"
                    for m in more
                )
                + " (`bench/results/SUMMARY.md`) |"
            )
        return rows
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
    if name == "containers":
        if "skipped" in r:
            return [f"| containers of the image | skipped: {r['skipped']} | | |"]
        return [
            f"| containers: largest N that held | {r['largest_n_held']} | target "
            f"{r['target_n']}; per N: `bench/results/SUMMARY.md` | |"
        ]
    if name == "startup":
        return _startup(r)
    if name == "probes":
        return [
            f"| {r['clients']} simultaneous `GET /healthz` × {r['rounds']} | slowest answer "
            f"{r['slowest_answer_s']} s, {r['unanswered']} unanswered (backlog {r['backlog']}) "
            f"| backlog {r['baseline_backlog']} (standard library default): "
            f"{r['baseline_slowest_answer_s']} s, {r['baseline_unanswered']} unanswered within "
            f"{r['give_up_s']:.0f} s | target < {r['target_s']:.0f} s |"
        ]
    if name == "faces":
        served, base, ua = r["opcua"], r["baseline"], r["opcua"]["opcua"]
        return [
            f"| OPC UA face, one process | {r['sensors']:,} sensors × 1/s for {r['seconds']} s: "
            f"{ua.get('rows_received')}/{ua.get('rows_in_window')} sampled rows received "
            f"(p95 {ua.get('latency_p95_s')} s after their timestamp), newest-row lag p95 "
            f"{served['newest_row_lag_p95_s']} s, {served['cpu_cores_used']} cores | same node "
            f"without faces: lag p95 {base['newest_row_lag_p95_s']} s, "
            f"{base['cpu_cores_used']} cores | "
            f"{'all' if served['all_sensors_within_1pct'] else 'NOT all'} sensors on schedule, "
            f"server built in {ua.get('build_s')} s |"
        ]
    if name == "score":
        s = r["stages"]
        stages = (
            f"truth {s['read_truth']} s and predictions {s['read_predictions']} s read side by "
            f"side, match {s['match']} s, metrics {s['metrics']} s"
            if "read_both" in s
            else ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in s.items())
        )
        repeats = f"; median of {r['runs']}, load {r['load_average_after']}" if "runs" in r else ""
        return [
            f"| score {r['rows']:,} readings (SQLite truth, CSV predictions) | {r['seconds']} s "
            f"({r['cpu_seconds']} s CPU: {stages}{repeats}) | plain numpy pass over the same "
            f"arrays {r['plain_numpy_seconds']} s; target < {r['target_seconds']:.0f} s | "
            f"{'met' if r['seconds'] < r['target_seconds'] else 'not met'}, ratio "
            f"{r['ratio_to_plain_numpy']} |"
        ]
    figures = ", ".join(
        f"{k}={v}"
        for k, v in r.items()
        if k not in ("benchmark", "measured_at", "machine") and not isinstance(v, dict | list)
    )
    return [f"| {name} | {figures} | see `bench/{name}.py` | |"]


def _startup(r: dict[str, Any]) -> list[str]:
    """Start-up rows: one container (with its stages), and the fleet when it ran."""
    if "skipped" in r:
        return [f"| start-up of a container | skipped: {r['skipped']} | | |"]
    one, stages = r["single"], r["single"]["stages_s"]
    lines = [
        f"| start-up, one container: `docker run` → first committed row | median "
        f"{one['node_first_row_s']} s over {one['repeats']} (in the container: interpreter at "
        f"{stages.get('interpreter')} s, imports done {stages.get('imports')} s, database open "
        f"{stages.get('database_open')} s, first commit {stages.get('first_commit')} s) | bare "
        f"`python -c pass` container {one['bare_pass_s']} s; bare python committing one "
        f"SQLite row {one['bare_row_first_row_s']} s"
        + (
            f"; the earlier build `{one['compare']['image']}` in the same rounds "
            f"{one['compare']['node_first_row_s']} s"
            if "compare" in one
            else ""
        )
        + f" | ratio {round(one['node_first_row_s'] / one['bare_row_first_row_s'], 2)} to "
        "the bare row |"
    ]
    if "fleet" in r:
        nodes, bare = r["fleet"], r["fleet_bare"]
        lines.append(
            f"| start-up, {nodes['containers']} containers (`generate_sensors.sh "
            f"--db-per-node`): created → first row | per container median "
            f"{nodes['first_row_per_container_median_s']} s, p95 "
            f"{nodes['first_row_per_container_p95_s']} s, max "
            f"{nodes['first_row_per_container_max_s']} s; all {nodes['with_a_row']} after "
            f"{nodes['all_rows_after_first_created_s']} s | {bare['containers']} bare "
            f"python containers committing a row, 8 started at a time: median "
            f"{bare['first_row_per_container_median_s']} s, all after "
            f"{bare['all_rows_after_first_created_s']} s"
            + (
                f"; the earlier build: median "
                f"{before['first_row_per_container_median_s']} s, max "
                f"{before['first_row_per_container_max_s']} s, all after "
                f"{before['all_rows_after_first_created_s']} s"
                if (before := one.get("compare", {}).get("fleet"))
                else ""
            )
            + f" | {r['cpu_cores_available']} cores |"
        )
    return lines


def _equipment_backfill(m: dict[str, Any], r: dict[str, Any]) -> str:
    met = "met" if m["ratio"] >= r["target_ratio"] else "NOT met"
    return (
        f"| backfill, one node, {m['type']} model (`{m['table']}`, labels inline) | "
        f"{m['backfill_rows_per_s']:,} rows/s | raw SQLite insert into the same table "
        f"{m['ceiling_rows_per_s']:,} rows/s (same schema, pragmas, batch) | ratio "
        f"**{m['ratio']}** (target ≥ {r['target_ratio']}) {met}"
        + (f", by CPU time {m['cpu_ratio']}" if "cpu_ratio" in m else "")
        + " |"
    )


def _density_rows(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        f"| density, {mode} | {d['sensors']:,} sensors × 1/s for {d['seconds']} s, "
        f"{d['rows_total']:,} rows; {d['rss_kb_per_sensor']} KB and "
        f"{d['cpu_cores_used']} cores | {d['cpu_cores_available']} cores; every sensor "
        f"within 1 % of {d['rows_expected_per_sensor']} rows | "
        f"{'all' if d['all_sensors_within_1pct'] else 'NOT all'} within 1 %, "
        f"{d['timestamps_off_schedule']} off-schedule timestamps, newest-row lag p95 "
        f"{d['newest_row_lag_p95_s']} s"
        + (
            f", databases opened in {d['open_seconds']} s "
            f"({d['live_seconds_after_opening']} s of the run left live)"
            if d.get("open_seconds") is not None
            else ""
        )
        + (
            f"; host load average {d['host_load_average'][0]} → "
            f"{d['host_load_average'][1]} on {d['cpu_cores_available']} cores"
            if d.get("host_load_average")
            else ""
        )
        + (f"; {d['notes']}" if d.get("notes") else "")
        + " |"
        for mode, d in runs
    ]


def _details(name: str, r: dict[str, Any]) -> list[str]:
    """Rows shown in SUMMARY.md only, after the benchmark's rows: the README keeps the
    headline (the largest container fleet that held, the compressor's backfill)."""
    if name == "containers" and "fleets" in r:
        return [
            f"| {f['containers']} containers × 1/s, --db-per-node | "
            f"{f['containers_on_schedule']}/{f['containers']} on schedule (60 rows in "
            f"{r['window_seconds']} s, newest < {r['lag_limit_s']:.0f} s); "
            f"{f['memory_mib_per_container_mean']} MiB, {f['cpu_pct_per_container_mean']}% "
            f"CPU per container | host {f['host_cpu_cores_busy']} of "
            f"{r['cpu_cores_available']} cores busy ({f['host_cpu_cores_busy_before_fleet']} "
            f"before the fleet), load {f['load_average_after']} | all writing after "
            f"{f['start_all_writing_s']} s; --down {f['down_s']} s, exit "
            f"{f['down_exit_status']}{'' if f['held'] else ' — did NOT hold'} |"
            for f in r["fleets"]
        ]
    if name == "density":
        return _density_rows([("one process", more) for more in r.get("more_sensors", [])])
    if name == "equipment":
        return [_equipment_backfill(m, r) for m in r["models"][1:]]
    if name == "pacing":
        return [
            f"| live pacing {p['readings_per_second']}/s | {p['rows_written']:,} rows in "
            f"{p['run_seconds']} s | expected {p['rows_expected']:,} | "
            f"{p['deviation_pct']:+}% |"
            for p in r["rates"][1:]
        ]
    return []


def summary(out_dir: Path, smoke: bool) -> str:
    """The table of the newest result of every benchmark in ``out_dir``, each with its date.

    Running some benchmarks (``--only``) refreshes their rows and keeps the others, so the
    table always covers every benchmark that has been run.
    """
    facts = machine()
    lines = [
        "# Benchmark results",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{' (smoke run)' if smoke else ''} on "
        f"{facts['cpus']} CPUs, Python {facts['python']}, {facts['platform']}.",
        "Each figure stands beside the limit it was measured against in the same run; the "
        "last column says when that run was.",
        "",
        *figures_table(out_dir, details=True),
    ]
    return "\n".join(lines) + "\n"


def figures_table(out_dir: Path, details: bool = False) -> list[str]:
    """Markdown table rows of every benchmark result in ``out_dir``, in run order; with
    ``details`` also the rows SUMMARY.md alone shows (the README stays short)."""
    rows = [
        "| benchmark | figure | measured against | result | measured |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in BENCHMARKS:
        path = out_dir / f"{name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        day = str(result.get("measured_at", ""))[:10]
        lines = _line(name, result) + (_details(name, result) if details else [])
        rows.extend(f"{line} {day} |" for line in lines)
    return rows


# The README shows the same table between these markers; ``python -m bench`` keeps it current.
README = RESULTS.parents[1] / "README.md"
BEGIN = "<!-- figures: written by python -m bench from bench/results -->"
END = "<!-- /figures -->"


def update_readme(table: list[str], readme: Path = README) -> None:
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + BEGIN + "\n" + "\n".join(table) + "\n" + END + tail)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--smoke", action="store_true", help="run each benchmark briefly")
    args.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run just these")
    args.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go")
    args.add_argument(
        "--summary-only",
        action="store_true",
        help="run nothing: write SUMMARY.md (and the README's table) from the results present",
    )
    options = args.parse_args()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in () if options.summary_only else options.only or BENCHMARKS:
        if not _available(name):
            print(f"== bench.{name}: not present, skipped")
            continue
        if not _run(name, options.smoke, options.out_dir / f"{name}.json"):
            failed.append(name)
    (options.out_dir / "SUMMARY.md").write_text(summary(options.out_dir, options.smoke))
    print(f"summary → {options.out_dir / 'SUMMARY.md'}")
    if options.out_dir.resolve() == RESULTS.resolve() and not options.smoke:
        update_readme(figures_table(options.out_dir))
        print(f"figures → {README}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
