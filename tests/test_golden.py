"""The classic sensor's rows and schema, pinned bit for bit for each shipped identity.

Each case backfills 100,000 readings through the real command line (fixed seed, config
and start) and hashes every column of every stored row, in id order, together with the
SQL that created ``sensor_readings`` and its indexes. Any change to how a classic sensor's
rows are produced, rendered or stored changes a digest, so refactors of the layout or the
generator cannot alter them unnoticed. If a digest must change on purpose, the change is
not a refactor: say so in the changelog.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import ROOT, run_main, write_config

IDENTITIES = ROOT / "identities"
SEED = 20261205
START = "2026-03-01T00:00:00Z"
ROWS = 100_000

# sha256 of the schema SQL and every row (see ``table_digest``); one per shipped identity.
GOLDEN: dict[str, str] = {
    "factory_new_1.json": "0cc17e53ec7dea587cab17168bcd10553ccf840d8a0f42cd90edb0abd22ab7d7",
    "factory_old_1.json": "f9aba7d2a19ac821b538d210b56f976e3625f88dca8bb767f80f0621c3d046a1",
    "outdoor_1.json": "a2e7a2f97011c1c6d81548b2b1f57c66eec55e379f386f917b7ee95f422a23b1",
    "warehouse_1.json": "ada9d75c88ab0ba9fed60c11235228bc7509e407ccd5d0b38f85f88521dd2930",
}


def table_digest(db: Path) -> str:
    """sha256 over the DDL of ``sensor_readings`` and its indexes, then every row by id."""
    digest = hashlib.sha256()
    with sqlite3.connect(db) as conn:
        schema = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'sensor_readings' "
            "ORDER BY type, name"
        ).fetchall()
        digest.update(json.dumps(schema).encode())
        # repr() of a float is exact, so the digest sees every bit of every value.
        for row in conn.execute("SELECT * FROM sensor_readings ORDER BY id"):
            digest.update(repr(row).encode())
            digest.update(b"\n")
        count = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
    assert count == ROWS
    return digest.hexdigest()


def backfill(tmp_path: Path, identity: Path, rate: float = 1.0) -> Path:
    """Backfill ``ROWS`` readings of ``identity`` at ``rate`` readings/s, otherwise with the
    built-in defaults; the file."""
    write_config(tmp_path / "config.yaml", simulation={"readings_per_second": rate})
    db = tmp_path / "golden.db"
    result = run_main(
        [
            "--config",
            "config.yaml",
            "--identity",
            str(identity),
            "--seed",
            str(SEED),
            "--db",
            str(db),
            "--start",
            START,
            "--backfill",
            f"{ROWS / rate}s",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return db


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_classic_rows_match_the_golden_digest(tmp_path: Path, name: str) -> None:
    """A shipped identity's 100,000 backfilled rows and its table's DDL hash to the pinned value."""
    assert table_digest(backfill(tmp_path, IDENTITIES / name)) == GOLDEN[name]


def test_identity_without_type_gives_the_classic_rows(tmp_path: Path) -> None:
    """An identity with no ``type`` field is the classic sensor: the same rows as with it."""
    fields = json.loads((IDENTITIES / "factory_old_1.json").read_text())
    del fields["type"]
    identity = tmp_path / "untyped.json"
    identity.write_text(json.dumps(fields))
    assert table_digest(backfill(tmp_path, identity)) == GOLDEN["factory_old_1.json"]


# The same sensor ten times as fast: pins the schedule's sub-second arithmetic as well.
GOLDEN_10_PER_SECOND = "b51e0053bd2ce1a7da8ecbbcbb8da7afdda2342a2d7f8857734629b1a56b5798"


def test_classic_rows_at_ten_readings_per_second(tmp_path: Path) -> None:
    """At 10 readings/s a classic sensor's rows hash to their own pinned value."""
    db = backfill(tmp_path, IDENTITIES / "factory_old_1.json", rate=10.0)
    assert table_digest(db) == GOLDEN_10_PER_SECOND
