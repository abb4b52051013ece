"""Daily partitions of the central PostgreSQL tables: rows land in the partition of their
UTC day, repeats are stored once, pg_partman makes days ahead, retention drops whole old
partitions only, and an unpartitioned table is refused rather than converted."""

from __future__ import annotations

import glob
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import servers
from servers import make_node_db, node_env, node_rows
from test_sync_cli import events, sync
from test_sync_equipment import make_mixed_db

postgres_server = servers.postgres_server

HOURLY = "0.000277778"  # one reading an hour


def _partman_installed() -> None:
    if not glob.glob("/usr/share/postgresql/*/extension/pg_partman.control"):
        servers.missing("pg_partman (Debian package postgresql-15-partman)")


@pytest.fixture(params=["pg_partman", "declarative"])
def central(request: pytest.FixtureRequest, postgres_server: str) -> Iterator[tuple[str, str]]:
    """A fresh database and the backend the sink should pick there: ``pg_partman`` as the
    superuser (the extension can be created), ``declarative`` as an owner who may not."""
    import psycopg

    if request.param == "pg_partman":
        _partman_installed()
    # id(request) named these before: an address, free to come back once an earlier
    # test's request is collected, and the database and role outlive their test.
    name = f"p_{request.param[:4]}_{uuid.uuid4().hex[:12]}"
    base = postgres_server.rsplit("/", 1)[0]
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        if request.param == "declarative":
            conn.execute(f"CREATE ROLE {name} LOGIN")
            conn.execute(f"CREATE DATABASE {name} OWNER {name}")
            yield base.replace("postgres@", f"{name}@") + f"/{name}", request.param
        else:
            conn.execute(f"CREATE DATABASE {name}")
            yield f"{base}/{name}", request.param


def pg(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def partitions(url: str, table: str) -> dict[str, tuple[datetime, datetime]]:
    """Each partition of ``table`` with its bounds (the default partition left out)."""
    rows = pg(
        url,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
        "JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        (table,),
    )
    found = {}
    for name, bound in rows:
        if bound == "DEFAULT":
            continue
        low, high = (part.split("'")[1] for part in bound.split(" TO "))
        found[name] = (datetime.fromisoformat(low), datetime.fromisoformat(high))
    return found


def day_of(timestamp: str) -> datetime:
    moment = datetime.fromisoformat(timestamp)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def backfill(folder: Path, span: str, seed: int = 3) -> Path:
    """A classic node file with ``span`` of history ending now, one reading an hour."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "node.db"
    result = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "run", "--db", str(db), "--seed", str(seed),
         "--backfill", span, "--readings-per-second", HOURLY],
        cwd=folder, env=node_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return db


def test_rows_land_in_their_day_and_a_second_run_adds_nothing(
    central: tuple[str, str], tmp_path: Path
) -> None:
    """Every reading is stored once in the partition of its UTC day, by the backend the
    database allows, and syncing the same file again stores nothing more."""
    url, backend = central
    db = backfill(tmp_path / "node", "5d")
    first = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert events(first.stderr, "central partitions")[0]["backend"] == backend
    stored = pg(
        url,
        'SELECT database_id, source_row_id, to_char(timestamp, \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'),'
        " tableoid::regclass::text FROM sensor_readings ORDER BY source_row_id",
    )
    expected = node_rows(db)
    assert [(r[0], r[1], r[2]) for r in stored] == [(r[0], r[1], r[2]) for r in expected]
    bounds = partitions(url, "sensor_readings")
    for _, _, timestamp, partition in stored:
        low, high = bounds[partition]
        assert low == day_of(timestamp) and high == low + timedelta(days=1), partition
    assert len({r[3] for r in stored}) == len({day_of(r[2]) for r in expected}) >= 5

    # The file's rows are sent again (a node whose marks were lost): nothing is added.
    subprocess.run(["sqlite3", str(db), "UPDATE sensor_readings SET synced = 0"], check=True)
    again = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    finished = events(again.stderr, "sync finished")[0]
    assert (finished["rows"], finished["rows_stored"]) == (len(expected), 0)
    assert pg(url, "SELECT count(*) FROM sensor_readings") == [(len(expected),)]

    # A key sent again with another reading of another day (a restored backup whose mark
    # was lost): the stored reading stays, the new one is kept beside the table.
    moved = "UPDATE sensor_readings SET timestamp = '2026-01-01T00:00:00.000000Z', synced = 0"
    subprocess.run(["sqlite3", str(db), moved + " WHERE id = 3"], check=True)
    third = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert events(third.stderr, "sync finished")[0]["conflicts"] == 1
    assert pg(url, "SELECT count(*) FROM sensor_readings") == [(len(expected),)]
    kept = pg(url, "SELECT source_row_id, timestamp FROM sensor_readings_conflicts")
    assert kept == [(3, datetime(2026, 1, 1, tzinfo=UTC))]


def test_concurrent_collectors_share_the_new_days(central: tuple[str, str], tmp_path: Path) -> None:
    """Two collectors shipping files of the same days at once both succeed: each day's
    partition is made once, and every row of both files is stored once."""
    url, _backend = central
    files = [backfill(tmp_path / f"node{n}", "8d", seed=n) for n in (1, 2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sensorfleet",
                "sync",
                str(db),
                "--once",
                "--batch-size",
                "20",
                "--sink",
                url + "?partition=daily",
                "--log-format",
                "json",
            ],
            cwd=tmp_path,
            env=node_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for db in files
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
    expected = sorted(r[:2] for db in files for r in node_rows(db))
    stored = pg(url, "SELECT database_id, source_row_id FROM sensor_readings ORDER BY 1, 2")
    assert stored == expected
    days = {day_of(r[2]) for db in files for r in node_rows(db)}
    assert days <= {low for low, _ in partitions(url, "sensor_readings").values()}


def test_partman_makes_days_ahead_for_each_table(postgres_server: str, tmp_path: Path) -> None:
    """With pg_partman, the classic and the equipment tables are registered with it, and
    partitions for the coming days exist before any reading of those days arrives."""
    import psycopg

    _partman_installed()
    url = postgres_server.rsplit("/", 1)[0] + "/ahead"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE ahead")
    db = make_mixed_db(tmp_path / "node")
    result = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    registered = pg(url, "SELECT parent_table, premake FROM partman.part_config ORDER BY 1")
    assert registered == [("public.compressor_readings", 4), ("public.sensor_readings", 4)]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for table in ("sensor_readings", "compressor_readings"):
        lows = {low for low, _ in partitions(url, table).values()}
        assert {today + timedelta(days=n) for n in range(5)} <= lows, table
        # The history of 2026-05-01 went to a partition of its own, not the default one.
        assert datetime(2026, 5, 1, tzinfo=UTC) in lows
        assert pg(url, f"SELECT count(*) FROM {table}_default") == [(0,)]
    # The furthest day ahead is gone (say, dropped by hand): the next run's maintenance,
    # partman's run_maintenance, makes it again before any reading of that day exists.
    furthest = max(partitions(url, "sensor_readings").items(), key=lambda item: item[1][0])
    pg(url, f"DROP TABLE {furthest[0]}")
    subprocess.run(["sqlite3", str(db), "UPDATE sensor_readings SET synced = 0"], check=True)
    again = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert furthest in partitions(url, "sensor_readings").items()
    counts = pg(url, "SELECT count(*) FROM compressor_readings")[0][0]
    node = subprocess.run(
        ["sqlite3", str(db), "SELECT count(*) FROM compressor_readings"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert counts == int(node.stdout) > 0


def test_retention_drops_whole_old_partitions_and_keeps_newer_rows(
    central: tuple[str, str], tmp_path: Path
) -> None:
    """retention=30d drops the partitions wholly older than 30 days, keeps every row of
    the later days (including the day the cutoff falls in), and stores no row older than
    the kept days when they arrive later."""
    url, _backend = central
    db = backfill(tmp_path / "node", "40d")
    first = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    expected = node_rows(db)
    assert pg(url, "SELECT count(*) FROM sensor_readings") == [(len(expected),)]
    assert len(partitions(url, "sensor_readings")) >= 40

    # A second file with the same 40 days comes after the retention is set.
    late = backfill(tmp_path / "late", "40d", seed=4)
    kept = sync(
        str(db), str(late), "--once", "--sink", url + "?partition=daily&retention=30d",
        cwd=tmp_path,
    )  # fmt: skip
    assert kept.returncode == 0, kept.stderr[-3000:]
    late_old = sum(e["rows"] for e in events(kept.stderr, "rows past retention"))
    first_day = pg(url, "SELECT date_trunc('day', now() - interval '30 days')")[0][0]
    for low, high in partitions(url, "sensor_readings").values():
        assert low >= first_day, (low, high)
    stored = Counter(r[0] for r in pg(url, "SELECT database_id FROM sensor_readings"))
    for rows in (expected, node_rows(late)):
        newer = [r for r in rows if datetime.fromisoformat(r[2]) >= first_day]
        assert stored[rows[0][0]] == len(newer) > 0
    assert late_old == len([r for r in node_rows(late) if day_of(r[2]) < first_day]) > 0
    kept_days = {low for low, _ in partitions(url, "sensor_readings").values()}
    assert min(kept_days) == first_day


def test_an_unpartitioned_table_is_refused(postgres_server: str, tmp_path: Path) -> None:
    """partition=daily on an existing plain table, or a partitioned table without it, is
    exit 2 with one line saying what to do, and the table keeps its rows."""
    import psycopg

    url = postgres_server.rsplit("/", 1)[0] + "/refused"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE refused")
    db = make_node_db(tmp_path / "node.db", backfill="2m")
    plain = sync(str(db), "--once", "--sink", url, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    rows = pg(url, "SELECT count(*) FROM sensor_readings")
    subprocess.run(["sqlite3", str(db), "UPDATE sensor_readings SET synced = 0"], check=True)
    refused = sync(str(db), "--once", "--sink", url + "?partition=daily", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr[-3000:]
    lines = [line for line in refused.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and "is not partitioned" in lines[0] and "table=NAME" in lines[0]
    assert "Traceback" not in refused.stderr
    assert pg(url, "SELECT count(*) FROM sensor_readings") == rows

    other = url + "?table=by_day&partition=daily"
    made = sync(str(db), "--once", "--sink", other, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    subprocess.run(["sqlite3", str(db), "UPDATE sensor_readings SET synced = 0"], check=True)
    unflagged = sync(str(db), "--once", "--sink", url + "?table=by_day", cwd=tmp_path)
    assert unflagged.returncode == 2
    assert "is partitioned; add partition=daily" in unflagged.stderr


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("partition=weekly", "option partition: expected daily (got 'weekly')"),
        ("retention=30d", "option retention: drops whole daily partitions; add partition=daily"),
        ("partition=daily&retention=2h", "option retention: at least 1d"),
        ("partition=daily&retention=soon", "expected a duration such as 90s"),
    ],
)
def test_partition_options_are_checked(query: str, expected: str) -> None:
    """A partition option the sink cannot honour is one usage line naming it."""
    from sensorfleet.errors import InputError
    from sensorfleet.sync.sink_url import parse_sink_url

    with pytest.raises(InputError) as caught:
        parse_sink_url(f"postgresql://u:secret@db/fleet?{query}")
    (line,) = caught.value.problems
    assert expected in line and "secret" not in line
