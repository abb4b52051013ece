"""``sensorfleet console``: a prompt that drives a real node's machine control, piped and in
a real terminal (tmux)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, query
from nodeproc import NodeProcess, http_json, monitoring_url
from polling import wait_until
from servers import free_port
from test_equipment_control import machine_rows, start_mixed_node

TOKEN = "console-s3cret-token"


def console_env(home: Path, **extra: str) -> dict[str, str]:
    """The console's environment: the source tree, a HOME of its own for the history."""
    return clean_env({"PYTHONPATH": str(ROOT / "src"), "HOME": str(home), **extra})


def shown(url: str, field: str) -> object:
    """A field of GET /sensors/C1 (a command applies at the machine's next reading)."""
    return http_json("GET", f"{url}/sensors/C1")[1][field]


class PipedConsole:
    """The console as a subprocess; each command is written, then its one answer read."""

    def __init__(self, url: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sensorfleet", "console", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.said: list[str] = []

    def ask(self, line: str) -> str:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> str:
        """The next line the console printed."""
        assert self.process.stdout
        answer = self.process.stdout.readline().rstrip("\n")
        self.said.append(answer)
        return answer

    def quit(self, line: str = "q") -> tuple[int, str, str]:
        out, err = self.process.communicate(line + "\n" if line else "", timeout=30)
        return self.process.returncode, out, err


def test_piped_console_injects_clears_and_maintains(tmp_path: Path) -> None:
    """Each command reaches the node: the fault shows in GET /sensors/C1 and in the rows of
    compressor_readings, 'c' ends it, 'm' starts maintenance, and the token is never shown."""
    db = tmp_path / "node.db"
    with start_mixed_node(tmp_path, token=TOKEN) as node:
        url = monitoring_url(node)
        wait_until(lambda: machine_rows(db) > 5, what="compressor rows")
        console = PipedConsole(url, console_env(tmp_path, MONITORING_TOKEN=TOKEN), tmp_path)
        assert console.ask("a C1 leak") == "C1: fault leak injected (severity 1)"
        wait_until(lambda: shown(url, "fault") == "leak", what="fault in GET /sensors/C1")
        wait_until(lambda: machine_rows(db, "fault = 'leak'") > 5, what="leak rows")
        assert console.ask("c C1") == "C1: cleared leak"
        wait_until(lambda: shown(url, "fault") is None, what="fault in GET /sensors/C1")
        cleared_at = machine_rows(db)
        wait_until(lambda: machine_rows(db) > cleared_at + 5, what="rows after clearing")
        assert console.ask("m C1 10m") == "C1: maintenance started for 10m"
        wait_until(lambda: shown(url, "maintenance") is True, what="maintenance in GET /sensors/C1")
        wait_until(lambda: machine_rows(db, "maintenance = 1") > 5, what="maintenance rows")
        table = [console.ask("s").split(), console.read().split(), console.read().split()]
        assert table[0] == ["ID", "TYPE", "STATE", "HEALTH", "FAULT"]
        assert table[1] == ["A", "temperature_vibration", "-", "-", "-"]
        assert table[2][:2] == ["C1", "compressor"] and table[2][2] == "maintenance"
        status, out, err = console.quit()
        assert (status, out, err) == (0, "", "")
        assert node.stop() == 0
    faults = [f for (f,) in query(db, "SELECT fault FROM compressor_readings ORDER BY id")]
    assert [f for i, f in enumerate(faults) if i == 0 or faults[i - 1] != f] == [None, "leak", None]
    service = query(db, "SELECT DISTINCT state FROM compressor_readings WHERE maintenance = 1")
    assert service == [("maintenance",)]
    assert TOKEN not in "\n".join(console.said)


def test_piped_console_errors_are_one_line_and_the_prompt_goes_on(tmp_path: Path) -> None:
    """An unknown sensor (404), an unknown fault or a classic sensor (400), a bad duration or
    command: one line each, the next command still runs, and end of input exits 0."""
    db = tmp_path / "node.db"
    with start_mixed_node(tmp_path) as node:
        url = monitoring_url(node)
        wait_until(lambda: machine_rows(db) > 5, what="compressor rows")
        console = PipedConsole(url, console_env(tmp_path), tmp_path)
        assert console.ask("a NOPE leak") == "error: no sensor 'NOPE' in this node (have: A, C1)"
        assert console.ask("a C1 meltdown").startswith("error: fault: must be one of leak, ")
        assert console.ask("c A").startswith(
            "error: sensor 'A' is a temperature_vibration sensor, which has anomaly episodes"
        )
        assert console.ask("m C1 soon") == (
            "error: DURATION: expected a duration such as 90s, 2h, 7d or 1h30m (got 'soon')"
        )
        assert console.ask("a A").startswith(
            "error: sensor 'A' is a temperature_vibration sensor, which has anomaly episodes"
        )
        assert console.ask("x") == "error: unknown command 'x'; h lists the commands"
        assert console.ask("c") == "error: usage: c ID"
        assert console.ask("h").startswith("a ID [FAULT]       inject FAULT into sensor ID")
        assert [console.read() for _ in range(5)][-1].startswith("q                  quit")
        assert console.ask("s C1") == "C1:"
        detail = dict(console.read().strip().split(": ", 1) for _ in range(9))
        assert detail["type"] == '"compressor"' and '"leak"' in detail["faults"]
        assert console.ask("a C1").startswith("C1: fault ")  # the model's first fault
        wait_until(lambda: shown(url, "fault") is not None, what="a fault in GET /sensors/C1")
        status, out, err = console.quit("")  # end of input, no 'q'
        assert (status, out, err) == (0, "", "")
        assert node.stop() == 0


def test_console_says_when_the_token_is_missing_or_the_node_is_down(tmp_path: Path) -> None:
    """Without the token the node's 401 comes with how to give one; a node that is not
    listening is one 'cannot reach' line; both exit 0 on 'q'."""
    with start_mixed_node(tmp_path, token=TOKEN) as node:
        url = monitoring_url(node)
        console = PipedConsole(url, console_env(tmp_path), tmp_path)
        answer = console.ask("c C1")
        assert answer.startswith("error: ") and answer.endswith(
            "; set MONITORING_TOKEN or use --token-file/--ask-token"
        )
        assert console.quit()[0] == 0
        assert node.stop() == 0
    down = f"http://127.0.0.1:{free_port()}"
    console = PipedConsole(down, console_env(tmp_path), tmp_path)
    assert console.ask("s") == f"error: cannot reach the node at {down}: Connection refused"
    assert console.quit() == (0, "", "")


def run_console(*args: str, cwd: Path, lines: str = "") -> subprocess.CompletedProcess[str]:
    """``sensorfleet console ARGS`` with ``lines`` on its standard input, to the end."""
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", "console", *args],
        input=lines,
        capture_output=True,
        text=True,
        env=console_env(cwd),
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_console_reads_the_token_from_a_file(tmp_path: Path) -> None:
    """--token-file gives the token; an unreadable file or a URL that is not http is exit 2
    with one line."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    with start_mixed_node(tmp_path, token=TOKEN) as node:
        url = monitoring_url(node)
        result = run_console(url, "--token-file", "token", cwd=tmp_path, lines="c C1\nq\n")
        assert (result.returncode, result.stdout) == (0, "C1: cleared no active fault\n")
        assert node.stop() == 0
    result = run_console("--token-file", "missing", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: missing: (file): cannot read the token: No such file or directory\n"
    )
    result = run_console("localhost:8080", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: URL: expected http://HOST:PORT of a node's monitor (got 'localhost:8080')\n"
    )


class Terminal:
    """A real terminal: a tmux session of its own running one command, which shows its
    exit status when it ends."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = f"sensorfleet-console-{uuid.uuid4().hex[:8]}"
        environment = [f"{key}={value}" for key, value in env.items()]
        self._tmux(
            "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", "-c", str(cwd),
            "env", "-i", *environment, "sh", "-c", '"$@"; echo "exited with $?"; sleep 60',
            "sh", *command,
        )  # fmt: skip

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", *args], capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, text: str) -> str:
        wait_until(lambda: text in self.screen(), what=f"{text!r} on the terminal")
        return self.screen()

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)


@contextmanager
def terminal(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[Terminal]:
    session = Terminal(command, env, cwd)
    try:
        yield session
    finally:
        session.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_console_in_a_real_terminal(tmp_path: Path) -> None:
    """In tmux: the prompt, Tab completion of ids and faults, the fault in GET /sensors/C1 and
    in the rows, 'c' and 'm' applied, history saved, the token not on screen, 'q' exits 0."""
    db = tmp_path / "node.db"
    node: NodeProcess
    with start_mixed_node(tmp_path, token=TOKEN) as node:
        url = monitoring_url(node)
        wait_until(lambda: machine_rows(db) > 5, what="compressor rows")
        env = console_env(tmp_path, MONITORING_TOKEN=TOKEN, TERM="xterm")
        command = [sys.executable, "-m", "sensorfleet", "console", url]
        with terminal(command, env, tmp_path) as term:
            term.wait_for("sensorfleet>")
            assert f"connected to {url}: 2 sensors; h for help" in term.screen()
            term.keys("a C", "Tab")  # the only machine id starting with C
            term.wait_for("sensorfleet> a C1")  # tmux trims the space after
            term.keys("le", "Tab")  # the fault names of C1's model
            term.wait_for("sensorfleet> a C1 leak")  # "le" went after that space
            term.keys("Enter")
            term.wait_for("C1: fault leak injected")
            wait_until(lambda: shown(url, "fault") == "leak", what="fault in GET /sensors/C1")
            wait_until(lambda: machine_rows(db, "fault = 'leak'") > 5, what="leak rows")
            term.keys("c C1", "Enter")
            term.wait_for("C1: cleared leak")
            wait_until(lambda: shown(url, "fault") is None, what="fault in GET /sensors/C1")
            term.keys("m C1 2s", "Enter")
            term.wait_for("C1: maintenance started for 2s")
            wait_until(
                lambda: shown(url, "maintenance") is True, what="maintenance in GET /sensors/C1"
            )
            term.keys("s", "Enter")
            term.wait_for("C1  compressor")
            term.keys("a NOPE", "Enter")
            term.wait_for("error: no sensor 'NOPE' in this node (have: A, C1)")
            term.keys("Up", "Up", "Up")  # history: 'a NOPE', 's', then 'm C1 2s'
            term.wait_for("sensorfleet> m C1 2s")
            term.keys("C-u", "q", "Enter")
            term.wait_for("exited with 0")
            assert TOKEN not in term.screen()
        wait_until(lambda: machine_rows(db, "maintenance = 1") >= 40, what="maintenance rows")
        assert node.stop() == 0
    history = (tmp_path / ".sensorfleet_console_history").read_text()
    assert "a C1 leak" in history and "m C1 2s" in history


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_console_asks_for_the_token_without_echoing_it(tmp_path: Path) -> None:
    """--ask-token reads the token at a hidden prompt; control then works, and the token
    never appears on the terminal."""
    with start_mixed_node(tmp_path, token=TOKEN) as node:
        url = monitoring_url(node)
        command = [sys.executable, "-m", "sensorfleet", "console", url, "--ask-token"]
        with terminal(command, console_env(tmp_path, TERM="xterm"), tmp_path) as term:
            term.wait_for("token:")
            term.keys(TOKEN, "Enter")
            term.wait_for("sensorfleet>")
            term.keys("c C1", "Enter")
            term.wait_for("C1: cleared no active fault")
            term.keys("q", "Enter")
            term.wait_for("exited with 0")
            assert TOKEN not in term.screen()
        assert node.stop() == 0
