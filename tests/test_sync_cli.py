"""``sensorfleet sync`` as a user runs it: a real subprocess, exit codes, logs and metrics."""

from __future__ import annotations

import array
import fcntl
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import servers
from polling import wait_until
from servers import ROOT, free_port, make_node_db, node_env, sqlite_rows, stop_process

DOCS = ROOT / "docs" / "sync.md"

postgres_server = servers.postgres_server
postgres_url = servers.postgres_url
http_receiver = servers.http_receiver


def sync(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", "sync", *args, "--log-format", "json"],
        cwd=cwd,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def events(stderr: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["event"] == name:
                found.append(record)
    return found


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_node_db(tmp_path_factory.mktemp("tpl") / "node.db", seed=2, backfill="10m")


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(template, folder / "node-1.db")
    return folder


def test_once_drains_a_folder_into_a_central_file(data: Path, tmp_path: Path) -> None:
    """`sync DIR --once` exits 0 after shipping and marking every row, and says how many."""
    result = sync("data", "--sink", "sqlite:///central.db", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sqlite_rows(tmp_path / "central.db", "SELECT count(*) FROM sensor_readings") == [(600,)]
    assert sqlite_rows(data / "node-1.db", "SELECT sum(synced) FROM sensor_readings") == [(600,)]
    (finished,) = events(result.stderr, "sync finished")
    assert finished["rows"] == 600 and finished["rows_stored"] == 600
    (progress,) = events(result.stderr, "source progress")
    assert progress["backlog"] == 0 and progress["rows_per_second"] > 0


def test_central_file_inside_the_source_folder_is_not_a_source(data: Path, tmp_path: Path) -> None:
    """A central SQLite file kept in the followed folder is never read as a node database."""
    result = sync("data", "--sink", "sqlite:///data/central.db", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    added = [e["source"] for e in events(result.stderr, "source added")]
    assert added == ["data/node-1.db"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sink", "nosuch://x"], "error: --sink 'nosuch://x': unknown sink type"),
        (["--sink", "mqtt://broker"], "no topic given"),
        (["--batch-size", "0"], "error: --batch-size: must be between 1 and 100000 (got 0)"),
        (["--interval", "soon"], "error: --interval: expected a duration"),
        (["missing.db"], "error: missing.db: no such file or folder"),
        (["--sink", "postgresql://u:p@127.0.0.1:99999/db"], "Port out of range"),
        (["--sink", "sqlite:///data/node-1.db"], "is the source file data/node-1.db itself"),
        (["--watch-interval", "often"], "error: --watch-interval: expected a duration"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    data: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    """Bad flags, sink URLs and sources end with status 2 and one error line, no traceback."""
    sources = {"missing.db": [], "sqlite:///data/node-1.db": ["data/node-1.db"]}.get(
        args[-1], ["data"]
    )
    result = sync(*sources, *args, "--once", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_a_cursor_file_nested_100000_levels_deep_exits_2_with_one_line(
    data: Path, tmp_path: Path
) -> None:
    """`sync --cursor` on a file of 100,000 nested arrays exits 2 with one line that says
    how to fix it, as for other damaged cursors (it was a RecursionError traceback)."""
    cursor = tmp_path / "cursor.json"
    cursor.write_text("[" * 100_000 + "]" * 100_000)
    result = sync("data", "--cursor", "cursor.json", "--sink", "-", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: cursor.json: (top level): nested too deeply (at most 64 levels); fix it, or "
        "delete it to ship every row again"
    ]
    assert result.stdout == ""


def test_sink_dash_writes_json_lines_to_stdout(data: Path, tmp_path: Path) -> None:
    """`--sink -` prints one JSON reading per line on stdout (logs on stderr) and marks them."""
    from sensorfleet.sync.sinks.base import CENTRAL_COLUMNS

    result = sync("data", "--sink", "-", "--once", "--batch-size", "64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source_row_id"] for r in lines] == list(range(1, 601))
    assert list(lines[0]) == list(CENTRAL_COLUMNS)
    assert events(result.stderr, "sync finished")[0]["rows"] == 600
    assert sqlite_rows(data / "node-1.db", "SELECT sum(synced) FROM sensor_readings") == [(600,)]


def test_closed_stdout_pipe_ends_sync_marking_only_what_was_written(
    data: Path, tmp_path: Path
) -> None:
    """`sync --sink - | head -n 50` exits 0 without a traceback, and exactly the rows whose
    lines reached the pipe (a prefix by id, as many as it logged) are marked."""
    command = f"{sys.executable} -m sensorfleet sync data --sink - --batch-size 40 " + (
        "--log-format json 2>sync.log | head -n 50 > head.txt; echo ${PIPESTATUS[0]} > rc"
    )
    subprocess.run(["bash", "-c", command], cwd=tmp_path, env=node_env(), timeout=60, check=True)
    log = (tmp_path / "sync.log").read_text()
    assert (tmp_path / "rc").read_text().strip() == "0", log
    assert "Traceback" not in log
    assert len((tmp_path / "head.txt").read_text().splitlines()) == 50
    (closed,) = events(log, "sink closed")
    shipped = events(log, "sync finished")[0]["rows"]
    marked = sqlite_rows(data / "node-1.db", "SELECT id FROM sensor_readings WHERE synced = 1")
    assert 50 <= shipped < 600
    assert sorted(r[0] for r in marked) == list(range(1, shipped + 1))
    assert closed["rows"] == shipped % 40


def _sync_into_a_pipe(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`sync data --sink -` with its stdout a pipe whose read end the test holds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensorfleet", "sync", "data", "--sink", "-",
         "--batch-size", "40", "--log-format", "json"],
        cwd=tmp_path, env=node_env(), stdout=subprocess.PIPE,
        stderr=(tmp_path / "sync.log").open("wb"),
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.fileno()


def _unread(fd: int) -> int:
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _read_some(fd: int) -> bytes:
    """What a reader takes before it stops reading: whatever the pipe holds once lines
    arrive, then the rest of the first batch (40 lines) if it was still coming."""
    wait_until(lambda: _unread(fd) > 0, timeout=60, what="the first lines in the pipe")
    taken = os.read(fd, 1 << 20)
    while taken.count(b"\n") < 40:
        wait_until(lambda: _unread(fd) > 0, timeout=60, what="the rest of the first batch")
        taken += os.read(fd, 1 << 20)
    return taken


def _ids(lines: bytes) -> list[int]:
    return [json.loads(line)["source_row_id"] for line in lines.splitlines()]


def test_sigterm_ends_sync_into_a_stalled_pipe_marking_only_what_was_read(
    data: Path, tmp_path: Path
) -> None:
    """A reader that stopped reading cannot hold `sync --sink -` past SIGTERM: it exits 0
    after a short grace, marks exactly the lines the reader read, and every line it left
    in the pipe is whole and unmarked (before, SIGTERM waited for the pipe to close)."""
    proc, fd = _sync_into_a_pipe(tmp_path)
    try:
        taken = _read_some(fd)
        # The reader stops here; sync writes the next batch into the pipe and waits.
        wait_until(lambda: _unread(fd) > 0, timeout=60, what="a batch nobody reads")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        left = os.read(fd, 1 << 20)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    log = (tmp_path / "sync.log").read_text()
    assert "Traceback" not in log
    (stopped,) = events(log, "sink write stopped")
    assert taken.endswith(b"\n") and left.endswith(b"\n")
    marked = sqlite_rows(data / "node-1.db", "SELECT id FROM sensor_readings WHERE synced = 1")
    assert sorted(r[0] for r in marked) == _ids(taken)
    unread = _ids(left)
    assert unread and unread[0] == len(_ids(taken)) + 1 and stopped["rows"] == 0
    assert events(log, "sync finished")[0]["rows"] == len(_ids(taken))


def test_a_reader_that_closes_the_pipe_unread_gets_nothing_marked_it_did_not_read(
    data: Path, tmp_path: Path
) -> None:
    """When the reader closes the pipe with lines still in it, sync exits 0 and marks only
    the lines the reader read; those left in the pipe buffer are not marked."""
    proc, fd = _sync_into_a_pipe(tmp_path)
    try:
        taken = _read_some(fd)
        wait_until(lambda: _unread(fd) > 0, timeout=60, what="a batch nobody reads")
        assert proc.stdout is not None
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    log = (tmp_path / "sync.log").read_text()
    assert "Traceback" not in log
    (closed,) = events(log, "sink closed")
    marked = sqlite_rows(data / "node-1.db", "SELECT id FROM sensor_readings WHERE synced = 1")
    assert sorted(r[0] for r in marked) == _ids(taken)
    assert closed["rows"] == 0 and events(log, "sync finished")[0]["rows"] == len(_ids(taken))


def test_postgres_holds_each_row_once_when_rows_are_sent_again(
    data: Path, tmp_path: Path, postgres_url: str
) -> None:
    """Rows sent again to PostgreSQL (as after a crash before marking) are stored once."""
    import psycopg

    first = sync("data", "--sink", postgres_url, "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(data / "node-1.db") as conn:
        conn.execute("UPDATE sensor_readings SET synced = 0 WHERE id > 100")
    again = sync("data", "--sink", postgres_url, "--once", "--batch-size", "64", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (finished,) = events(again.stderr, "sync finished")
    assert (finished["rows"], finished["rows_stored"]) == (500, 0)
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT (database_id, source_row_id)) FROM sensor_readings"
        ).fetchone()
    assert stored == (600, 600)
    assert sqlite_rows(data / "node-1.db", "SELECT sum(synced) FROM sensor_readings") == [(600,)]


def test_unreachable_sink_exits_1_and_marks_nothing(data: Path, tmp_path: Path) -> None:
    """A sink that cannot be reached at start is one clear error line; no row is marked."""
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/fleet"
    result = sync("data", "--sink", url, "--once", "--sink-timeout", "2s", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: cannot use sink: postgresql://postgres:***@127.0.0.1")
    assert "secret" not in result.stderr
    assert sqlite_rows(data / "node-1.db", "SELECT sum(synced) FROM sensor_readings") == [(0,)]


def test_query_values_and_passwords_never_reach_the_output(
    data: Path, tmp_path: Path, http_receiver: servers.Receiver
) -> None:
    """An HTTP sink's api_key stays hidden in the start line, in a refusal that echoes the
    URL and in the error line; so do a bare HTTP user info and Kafka's OAuth settings."""
    secret = "K3Y-0f-the-plant"
    http_receiver.fail_next, http_receiver.fail_status = 1, 400
    url = f"{http_receiver.url}?api_key={secret}"
    result = sync("data", "--sink", url, "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (start,) = events(result.stderr, "sync starting")
    assert start["sink"].endswith("/ingest?api_key=***")
    (refused,) = events(result.stderr, "sink write failed")
    assert "400" in refused["error"] and "api_key=***" in refused["error"]
    assert secret not in result.stderr and len(http_receiver.rows()) == 600

    closed = f"http://127.0.0.1:{free_port()}/ingest?api_key={secret}"
    result = sync("data", "--sink", closed, "--once", cwd=tmp_path)
    assert result.returncode == 1 and "/ingest?api_key=***: connect:" in result.stderr
    bare = f"https://{secret}@127.0.0.1:{free_port()}/ingest"
    result = sync("data", "--sink", bare, "--once", cwd=tmp_path)
    assert result.returncode == 1 and "https://***@127.0.0.1" in result.stderr
    assert secret not in result.stderr

    oauth = "sasl.oauthbearer.config=clientSecret%3D" + secret
    kafka = f"kafka://127.0.0.1:{free_port()}/t?sasl.mechanism=OAUTHBEARER&{oauth}"
    result = sync("data", "--sink", kafka + "&sasl.oauthbearer.method=oidc", cwd=tmp_path)
    assert result.returncode == 2 and "sasl.oauthbearer.config=***&" in result.stderr
    assert "sasl.mechanism=OAUTHBEARER" in result.stderr  # harmless settings stay readable
    assert secret not in result.stderr


def test_librdkafka_log_lines_hide_the_sink_settings(data: Path, tmp_path: Path) -> None:
    """librdkafka's own lines (here its configuration dump) show *** for a setting's value."""
    secret = "kinit-K3Y-0f-the-plant"
    kafka = f"kafka://127.0.0.1:{free_port()}/t?debug=conf&sasl.kerberos.kinit.cmd={secret}"
    result = sync("data", "--sink", kafka, "--once", "--sink-timeout", "1s", "--log-level",
                  "DEBUG", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("{")]
    dumped = [e for e in (json.loads(ln)["event"] for ln in lines) if "kinit.cmd =" in e]
    assert dumped and all(line.endswith("sasl.kerberos.kinit.cmd = ***") for line in dumped)
    assert secret not in result.stderr


def test_follow_serves_metrics_and_stops_cleanly(data: Path, tmp_path: Path) -> None:
    """Following, the collector serves Prometheus metrics, logs backlog, and exits 0 on SIGTERM."""
    log = tmp_path / "sync.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sensorfleet", "sync", "data", "--sink", "jsonl:///out",
             "--metrics-port", "0", "--interval", "0.1s", "--log-interval", "0.2s",
             "--log-format", "json"],
            cwd=tmp_path, env=node_env(), stderr=handle, text=True,
        )  # fmt: skip
        try:
            port = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                serving = events(log.read_text(), "metrics serving")
                shipped = events(log.read_text(), "source progress")
                if serving and any(e["backlog"] == 0 for e in shipped):
                    port = serving[0]["port"]
                    break
                time.sleep(0.1)
            assert port, log.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        finally:
            stop_process(proc)
    assert proc.returncode == 0
    assert re.search(r'sensorfleet_sync_rows_shipped_total\{source="data/node-1.db"\} 600\.0', text)
    assert 'sensorfleet_sync_backlog_rows{source="data/node-1.db"} 0.0' in text
    assert events(log.read_text(), "sync finished")
    published = list((tmp_path / "out").glob("*.jsonl"))
    assert len(published) == 1 and not list((tmp_path / "out").glob("*.partial"))


def test_every_option_is_documented() -> None:
    """docs/sync.md mentions every option of `sensorfleet sync --help`."""
    result = subprocess.run(
        [sys.executable, "-m", "sensorfleet", "sync", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=node_env(),
    )
    options = set(re.findall(r"(--[a-z][a-z-]+)", result.stdout)) - {"--help"}
    text = DOCS.read_text()
    assert {o for o in options if o not in text} == set()
