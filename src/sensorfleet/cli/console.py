"""``sensorfleet console [URL]``: a prompt over a running node's HTTP control.

    a ID [FAULT]       inject a fault (the model's first one when FAULT is left out)
    c ID               clear the machine's faults
    m ID [DURATION]    start maintenance (the model's own duration when left out)
    s [ID]             machine states: every sensor, or one in detail
    h                  help
    q                  quit (so does end of input)

An edge of its own: it speaks HTTP to the monitor with the standard library and
imports nothing of the node but the duration parser, so it works against any node,
local or in a container. Errors (a node that is down, an unknown sensor or fault) are
one line each and the prompt goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from ..errors import InputError
from ..node.clock import parse_duration

DEFAULT_URL = "http://127.0.0.1:8080"
HISTORY_FILE = "~/.sensorfleet_console_history"
HISTORY_LENGTH = 1000
TIMEOUT_SECONDS = 10.0
COMMANDS = ("a", "c", "m", "s", "h", "q")

HELP = """\
a ID [FAULT]       inject FAULT into sensor ID (default: the model's first fault)
c ID               clear sensor ID's faults
m ID [DURATION]    start maintenance on sensor ID (90s, 10m, 2h; default: the model's)
s [ID]             machine states of every sensor, or of sensor ID in detail
h                  this help
q                  quit (Ctrl-D too); Tab completes commands, sensor ids and faults"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        help="an interactive prompt that injects faults and starts maintenance on a running node",
        description=(
            "A prompt over a running node's HTTP control: a ID [FAULT] injects a fault, "
            "c ID clears it, m ID [DURATION] starts maintenance, s shows the machines' "
            "states, h shows help, q quits. The token comes from MONITORING_TOKEN, "
            "--token-file or --ask-token and is never shown."
        ),
    )
    parser.add_argument(
        "url",
        nargs="?",
        default=DEFAULT_URL,
        metavar="URL",
        help="the node's monitor (default: %(default)s)",
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the control token from FILE (its first line) instead of $MONITORING_TOKEN",
    )
    token.add_argument(
        "--ask-token",
        action="store_true",
        help="ask for the control token at start, without echoing it",
    )
    parser.set_defaults(handler=handle)


class NodeError(Exception):
    """A request the node refused or could not answer, as one line for the user."""


class NodeClient:
    """The node's monitor over HTTP: JSON in and out, errors as one readable line."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self._token = token

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Send one request; the decoded JSON answer, or ``NodeError`` saying why not."""
        headers = {"Accept": "application/json"}
        data = None
        if method != "GET":
            # Control requests are JSON (the node refuses anything else with 415).
            headers["Content-Type"] = "application/json"
            data = json.dumps(body or {}).encode()
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise NodeError(self._refusal(exc)) from None
        except urllib.error.URLError as exc:
            reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
            raise NodeError(f"cannot reach the node at {self.url}: {reason}") from None
        except (TimeoutError, ConnectionError) as exc:
            raise NodeError(f"cannot reach the node at {self.url}: {exc}") from None
        except json.JSONDecodeError:
            raise NodeError(
                f"{self.url}{path} did not answer JSON; is it a sensorfleet node?"
            ) from None

    def _refusal(self, exc: urllib.error.HTTPError) -> str:
        try:
            message = str(json.loads(exc.read())["error"])
        except (ValueError, KeyError, TypeError, OSError):
            message = exc.reason or "no reason given"
        if exc.code == 401:
            hint = "; set MONITORING_TOKEN or use --token-file/--ask-token"
            return f"{message}{hint}" if self._token is None else message
        return message

    def sensors(self) -> list[dict[str, Any]]:
        answer: dict[str, Any] = self.request("GET", "/sensors")
        return list(answer.get("sensors", []))

    def sensor(self, sensor_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("GET", f"/sensors/{quote(sensor_id, safe='')}")
        return answer

    def control(self, method: str, sensor_id: str, action: str, body: Mapping[str, Any]) -> Any:
        return self.request(method, f"/sensors/{quote(sensor_id, safe='')}/{action}", body)


class Console:
    """The commands, the lines they print and what Tab completes; no terminal handling."""

    def __init__(self, client: NodeClient, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.sensor_ids: list[str] = []
        self.faults: dict[str, list[str]] = {}

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def refresh(self) -> list[dict[str, Any]]:
        """Ask the node for its sensors (and remember their ids for completion)."""
        sensors = self.client.sensors()
        self.sensor_ids = [str(sensor["id"]) for sensor in sensors]
        return sensors

    def faults_of(self, sensor_id: str) -> list[str]:
        if sensor_id not in self.faults:
            self.faults[sensor_id] = list(self.client.sensor(sensor_id).get("faults") or [])
        return self.faults[sensor_id]

    def run_line(self, line: str) -> bool:
        """Carry out one command line; False when it asks to quit."""
        words = line.split()
        if not words:
            return True
        command, args = words[0].lower(), words[1:]
        actions: dict[str, Callable[[list[str]], None]] = {
            "a": self.inject,
            "c": self.clear,
            "m": self.maintain,
            "s": self.show,
            "h": lambda _: self.say(HELP),
            "?": lambda _: self.say(HELP),
        }
        if command in ("q", "quit", "exit"):
            return False
        action = actions.get(command)
        try:
            if action is None:
                raise NodeError(f"unknown command {words[0]!r}; h lists the commands")
            action(args)
        except NodeError as exc:
            self.say(f"error: {exc}")
        except InputError as exc:
            self.say(f"error: {exc.problems[0]}")
        return True

    def _sensor(self, args: list[str], usage: str, most: int) -> str:
        if not 1 <= len(args) <= most:
            raise NodeError(f"usage: {usage}")
        return args[0]

    def inject(self, args: list[str]) -> None:
        sensor_id = self._sensor(args, "a ID [FAULT]", 2)
        if len(args) == 2:
            fault = args[1]
        else:
            known = self.faults_of(sensor_id)
            if not known:  # a classic sensor: the node's refusal says to use /anomalies
                self.client.control("POST", sensor_id, "faults", {})
                raise NodeError(f"sensor {sensor_id!r} has no faults to inject")
            fault = known[0]
        answer = self.client.control("POST", sensor_id, "faults", {"fault": fault})
        if answer.get("status") == "queued":
            self.say(f"{sensor_id}: fault {fault} queued (the node is busy; it starts soon)")
        else:
            self.say(f"{sensor_id}: fault {fault} injected (severity {answer['severity']:g})")

    def clear(self, args: list[str]) -> None:
        sensor_id = self._sensor(args, "c ID", 1)
        answer = self.client.control("DELETE", sensor_id, "faults", {})
        ended = answer.get("faults")
        if answer.get("status") == "queued":
            self.say(f"{sensor_id}: clearing queued (the node is busy)")
        else:
            self.say(f"{sensor_id}: cleared {', '.join(ended) if ended else 'no active fault'}")

    def maintain(self, args: list[str]) -> None:
        sensor_id = self._sensor(args, "m ID [DURATION]", 2)
        body = {}
        if len(args) == 2:
            body["duration_seconds"] = parse_duration(args[1], "DURATION")
        answer = self.client.control("POST", sensor_id, "maintenance", body)
        how_long = f" for {args[1]}" if len(args) == 2 else ""
        queued = " (queued: the node is busy)" if answer.get("status") == "queued" else ""
        self.say(f"{sensor_id}: maintenance started{how_long}{queued}")

    def show(self, args: list[str]) -> None:
        if len(args) > 1:
            raise NodeError("usage: s [ID]")
        if args:
            self._show_one(args[0])
            return
        sensors = self.refresh()
        if not sensors:
            self.say("no sensors")
            return
        rows = [("ID", "TYPE", "STATE", "HEALTH", "FAULT")]
        for sensor in sensors:
            health = sensor.get("health")
            rows.append(
                (
                    str(sensor["id"]),
                    str(sensor.get("type") or "-"),
                    str(sensor.get("state") or "-"),
                    f"{health:.3f}" if isinstance(health, int | float) else "-",
                    str(sensor.get("fault") or sensor.get("anomaly") or "-"),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.say("  ".join(cells).rstrip())

    def _show_one(self, sensor_id: str) -> None:
        detail = self.client.sensor(sensor_id)
        self.faults[sensor_id] = list(detail.get("faults") or [])
        fields = (
            "type",
            "state",
            "health",
            "fault",
            "fault_severity",
            "rul_seconds",
            "maintenance",
            "faults",
            "last_reading",
        )
        self.say(f"{sensor_id}:")
        for name in fields:
            if name in detail:
                self.say(f"  {name}: {json.dumps(detail[name], default=str)}")

    def complete(self, line: str, text: str) -> list[str]:
        """What may follow ``text``, the word being typed at the end of ``line``."""
        words = line.split()
        if line and not line[-1].isspace():
            words = words[:-1]  # the word being typed is ``text``
        if not words:
            return [c + " " for c in COMMANDS if c.startswith(text)]
        command = words[0].lower()
        if len(words) == 1 and command in ("a", "c", "m", "s"):
            if not self.sensor_ids:
                with contextlib.suppress(NodeError):
                    self.refresh()
            return [i + " " for i in self.sensor_ids if i.startswith(text)]
        if len(words) == 2 and command == "a":
            with contextlib.suppress(NodeError):
                return [f + " " for f in self.faults_of(words[1]) if f.startswith(text)]
        return []


def read_token(args: argparse.Namespace) -> str | None:
    """The control token: --token-file, --ask-token or $MONITORING_TOKEN (None: no token)."""
    if args.token_file:
        try:
            lines = Path(args.token_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            problem = f"{args.token_file}: (file): cannot read the token: {exc.strerror}"
            raise InputError([problem]) from None
        if not lines or not lines[0].strip():
            raise InputError([f"{args.token_file}: (top level): empty; expected the token"])
        return lines[0].strip()
    if args.ask_token:
        return getpass.getpass("token: ") or None
    return os.environ.get("MONITORING_TOKEN") or None


def _readline(console: Console) -> None:
    """History and line editing, with Tab completion, where the readline module exists."""
    try:
        import readline
    except ImportError:  # Windows, or a Python built without it: plain input() still works
        return
    history = Path(os.path.expanduser(HISTORY_FILE))
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    readline.set_history_length(HISTORY_LENGTH)

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(history)

    import atexit

    atexit.register(save)

    def complete(text: str, state: int) -> str | None:
        options = console.complete(readline.get_line_buffer()[: readline.get_endidx()], text)
        return options[state] if state < len(options) else None

    readline.set_completer_delims(" \t")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")


def handle(args: argparse.Namespace) -> int:
    if not args.url.startswith(("http://", "https://")):
        raise InputError([f"URL: expected http://HOST:PORT of a node's monitor (got {args.url!r})"])
    console = Console(NodeClient(args.url, read_token(args)), sys.stdout)
    interactive = sys.stdin.isatty()
    if interactive:
        _readline(console)
        try:
            count = len(console.refresh())
            console.say(f"connected to {args.url}: {count} sensors; h for help")
        except NodeError as exc:
            console.say(f"error: {exc}")
    prompt = "sensorfleet> " if interactive else ""
    while True:
        try:
            line = input(prompt)
        except EOFError:
            if interactive:
                console.say("")
            return 0
        except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as shells do
            console.say("")
            continue
        if not console.run_line(line):
            return 0
