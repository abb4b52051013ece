"""Backfill throughput of equipment models vs the raw SQLite insert into the same table.

For each reference model measured (the compressor first), both sides write the model's
``<type>_readings`` table with the same schema, pragmas, batch size and transaction
helper: the ceiling inserts pre-built row tuples with ``executemany`` (simulation and
row building excluded), ours runs the node's real backfill path (simulate → rows →
write, labels inline). They run interleaved, several rounds, and the medians are
compared, as ``bench.backfill`` does for the classic sensor.

Then live density: N machines of the reference models in equal shares, each at 1
reading/s, in one node process for T seconds, checked as ``bench.density`` checks
classic sensors (every machine within 1 % of its expected rows, timestamps one period
apart, newest-row lag, cores).

    python -m bench.equipment [--rows N] [--rounds R] [--types compressor,motor]
                              (default: every built-in model; --smoke: the four
                              reference models)
                              [--sensors 1000] [--seconds 300] [--smoke]
                              [--backfill-only]  (keeps the stored live-density figures)
"""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from sensorfleet import logs
from sensorfleet.equipment.catalogue import Catalogue, load_catalogue
from sensorfleet.node.clock import ManualClock
from sensorfleet.node.config import Config, build_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors
from sensorfleet.node.machine import EquipmentGenerator, MachineSettings
from sensorfleet.node.store import Store, TableRows

from . import density
from ._common import RESULTS, median, parser, save
from .backfill import Timing, conditions

START = 1_700_000_000.0
# The engine's four reference models: the smoke run's set (a full run measures every
# built-in model, one backfill row per model family of the catalogue).
TYPES = ("compressor", "motor", "fan", "hvac")


def ceiling(path: Path, rows: int, settings: MachineSettings) -> Timing:
    """Time to insert ``rows`` pre-built rows of the model's table through the store."""
    database = settings.config.database
    generator = EquipmentGenerator(settings, 1, START)
    batches = [
        generator.generate(min(database.batch_size, rows - i)).rows()
        for i in range(0, rows, database.batch_size)
    ]
    store = Store(path, database)
    store.open()
    layout = settings.layout

    def insert_all() -> None:
        for chunk in batches:
            store.write_tables([TableRows(layout, partial(iter, chunk))])

    timing = Timing(insert_all)
    store.close()
    return timing


def ours(path: Path, rows: int, settings: MachineSettings, catalogue: Catalogue) -> Timing:
    """Time for the node's real backfill path to write ``rows`` readings of the model."""
    config = msgspec.structs.replace(
        settings.config,
        database=msgspec.structs.replace(settings.config.database, path=str(path)),
    )
    sensors = build_sensors(config, [(None, settings.identity)], 1, START, catalogue)
    loop = NodeLoop(config, sensors, ManualClock(START))
    timing = Timing(lambda: loop.backfill(START + rows * settings.interval_seconds))
    summary = loop.close()
    assert summary.rows_written == rows, summary
    return timing


def measure(
    model: str, rows: int, rounds: int, config: Config, catalogue: Catalogue, tmp: Path
) -> dict[str, Any]:
    identity = build_identity({**DEFAULT_IDENTITY, "id": f"{model}-bench"}, "bench", {})
    identity = msgspec.structs.replace(identity, type=model)
    settings = MachineSettings.resolve(config, identity, catalogue)
    ceilings, runs = [], []
    for i in range(rounds):
        ceilings.append(ceiling(tmp / f"{model}-ceiling{i}.db", rows, settings))
        runs.append(ours(tmp / f"{model}-ours{i}.db", rows, settings, catalogue))
    ceiling_rate = rows / median([t.wall for t in ceilings])
    ours_rate = rows / median([t.wall for t in runs])
    ceiling_cpu, ours_cpu = median([t.cpu for t in ceilings]), median([t.cpu for t in runs])
    return {
        "type": model,
        "table": settings.layout.table,
        "columns": len(settings.layout.insert_sql().split(",")),
        "interval_seconds": settings.interval_seconds,
        "ceiling_rows_per_s": round(ceiling_rate),
        "backfill_rows_per_s": round(ours_rate),
        "ratio": round(ours_rate / ceiling_rate, 3),
        # The same by the process's CPU time: steadier on a shared machine.
        "cpu_ratio": round(ceiling_cpu / ours_cpu, 3),
        "simulated_days_per_s": round(ours_rate * settings.interval_seconds / 86_400, 2),
    }


def run(types: list[str], rows: int, rounds: int) -> dict[str, Any]:
    logs.configure(level="WARNING")  # a log line per batch would be measured too
    config = build_config({}, "bench")
    catalogue = load_catalogue()
    with tempfile.TemporaryDirectory() as tmp:
        models = [measure(t, rows, rounds, config, catalogue, Path(tmp)) for t in types]
    return {
        **conditions(config, rows, rounds),
        "labels": config.labels.mode,
        "target_ratio": 0.8,
        "models": models,
        "all_met": all(m["ratio"] >= 0.8 for m in models),
    }


def _stored_density(out: Path | None) -> dict[str, Any]:
    """The live-density figures of the stored result, marked with when they were measured."""
    path = out or RESULTS / "equipment.json"
    try:
        stored = json.loads(path.read_text())
        kept: dict[str, Any] = stored["density"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{path}: no stored density figures to keep ({exc})") from None
    kept.setdefault("measured_at", stored.get("measured_at"))
    return kept


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--rows", type=int, default=200_000)
    args.add_argument("--rounds", type=int, default=5)
    args.add_argument(
        "--types", default="", help="comma-separated model names (default: every built-in model)"
    )
    args.add_argument("--sensors", type=int, default=1_000, help="machines in the live run")
    args.add_argument("--seconds", type=int, default=300, help="length of the live run")
    args.add_argument(
        "--backfill-only",
        action="store_true",
        help="measure the backfill rows only; the live-density figures stay as stored",
    )
    options = args.parse_args()
    types = [t for t in options.types.split(",") if t] or (
        list(TYPES) if options.smoke else list(load_catalogue().names())
    )
    rows, rounds = (20_000, 1) if options.smoke else (options.rows, options.rounds)
    sensors, seconds = (40, 6) if options.smoke else (options.sensors, options.seconds)
    stored = _stored_density(options.out) if options.backfill_only else None
    result = run(types, rows, rounds)
    mix = ",".join(f"{t}=1" for t in types)
    result["density"] = stored or density.run(sensors, seconds, types=mix)
    if stored is None and not options.smoke and (sensors, seconds) != (1_000, 300):
        # A shortened run (a shared machine) says so in the file the README table reads.
        result["density"]["notes"] = (
            f"shortened run: {sensors:,} machines for {seconds} s (full: 1,000 for 300 s)"
        )
    path = save("equipment", result, options.out)
    for m in result["models"]:
        print(
            f"equipment backfill, {m['type']}: {m['backfill_rows_per_s']:,} rows/s  "
            f"ceiling: {m['ceiling_rows_per_s']:,} rows/s  ratio: {m['ratio']} "
            f"(CPU {m['cpu_ratio']}) "
            f"(target ≥ {result['target_ratio']})"
        )
    print(density.line("machines, one shared file", result["density"]))
    print(f"equipment → {path}")


if __name__ == "__main__":
    main()
