"""A burst of simultaneous health probes: how long until every one is answered.

The node's endpoint listens with a backlog of ``monitor.LISTEN_BACKLOG``; the
baseline, run side by side on the same node, is the standard library's
default of 5, where connections beyond the queue wait for SYN retransmits.

    python -m bench.probes [--clients 200] [--rounds 5] [--smoke]
"""

from __future__ import annotations

import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sensorfleet import logs
from sensorfleet.edges.monitor import LISTEN_BACKLOG, Monitor
from sensorfleet.node.clock import ManualClock
from sensorfleet.node.config import build_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.loop import NodeLoop, build_sensors

from ._common import parser, save

BASELINE_BACKLOG = 5  # http.server's default


GIVE_UP_SECONDS = 10.0  # a probe not answered by then counts as unanswered


def burst(url: str, clients: int) -> list[float | None]:
    """Seconds each of ``clients`` simultaneous GETs took to be answered (None: never)."""
    ready = threading.Barrier(clients)
    took: list[float | None] = [None] * clients

    def probe(i: int) -> None:
        ready.wait()
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=GIVE_UP_SECONDS) as response:
                response.read()
        except OSError:
            return
        took[i] = time.perf_counter() - started

    threads = [threading.Thread(target=probe, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return took


def run(clients: int, rounds: int) -> dict[str, Any]:
    logs.configure("WARNING", None, console=False)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        config = build_config({"database": {"path": str(Path(tmp) / "n.db")}}, "bench")
        identity = build_identity(DEFAULT_IDENTITY, "bench", {})
        loop = NodeLoop(
            config, build_sensors(config, [(None, identity)], 1, start), ManualClock(start)
        )
        answers: dict[int, list[float | None]] = {}
        for backlog in (BASELINE_BACKLOG, LISTEN_BACKLOG):
            monitor = Monitor(loop, port=0, backlog=backlog)
            port = monitor.start()
            try:
                answers[backlog] = [
                    took
                    for _ in range(rounds)
                    for took in burst(f"http://127.0.0.1:{port}/healthz", clients)
                ]
            finally:
                monitor.stop()
        loop.close()

    def slowest(backlog: int) -> float:
        return round(max(GIVE_UP_SECONDS if t is None else t for t in answers[backlog]), 3)

    def unanswered(backlog: int) -> int:
        return sum(t is None for t in answers[backlog])

    return {
        "clients": clients,
        "rounds": rounds,
        "backlog": LISTEN_BACKLOG,
        "slowest_answer_s": slowest(LISTEN_BACKLOG),
        "unanswered": unanswered(LISTEN_BACKLOG),
        "baseline_backlog": BASELINE_BACKLOG,
        "baseline_slowest_answer_s": slowest(BASELINE_BACKLOG),
        "baseline_unanswered": unanswered(BASELINE_BACKLOG),
        "give_up_s": GIVE_UP_SECONDS,
        "target_s": 1.0,
    }


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--clients", type=int, default=200)
    args.add_argument("--rounds", type=int, default=5)
    options = args.parse_args()
    result = run(50 if options.smoke else options.clients, 1 if options.smoke else options.rounds)
    path = save("probes", result, options.out)
    print(
        f"probes: {result['clients']} simultaneous GET /healthz, slowest answer "
        f"{result['slowest_answer_s']} s, {result['unanswered']} unanswered (backlog "
        f"{result['backlog']}) vs {result['baseline_slowest_answer_s']} s, "
        f"{result['baseline_unanswered']} unanswered (backlog {result['baseline_backlog']})"
        f"  → {path}"
    )


if __name__ == "__main__":
    main()
