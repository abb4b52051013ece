"""Where a node's start-up time goes: ``sensorfleet run`` with a stamp at every stage.

    python bench/_startup_probe.py [sensorfleet run options]

Runs the node as the ``sensorfleet`` command does, with the wall-clock time recorded
when each stage of its start ends: the interpreter (process creation, read from
/proc), the command's imports, reading and checking the config and identity, logging,
opening the database (schema, lease), starting the edges (file watcher, HTTP monitor),
the first reading generated and the first row committed. After the first commit the
node is stopped as ``docker stop`` stops it (SIGTERM), and one line
``startup-probe {json}`` goes to stdout.

A script of its own, importing nothing of ``bench``, so that it can be mounted into a
container of the image and run by its interpreter with the image's settings.
"""

import time

PROBE_STARTED = time.time()

import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

stamps: dict[str, float] = {}


def process_started() -> float | None:
    """Wall time the process was created (in a container, its entrypoint's start: the
    entrypoint execs the interpreter in the same process), to the kernel's 10 ms ticks."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def stamp_after(owner: Any, name: str, stage: str, first_only: bool = True) -> None:
    """Record when ``owner.name`` first returns (as ``stage``); missing names are skipped."""
    original: Callable[..., Any] | None = getattr(owner, name, None)
    if original is None:
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        begun = time.time()
        result = original(*args, **kwargs)
        if not first_only or stage not in stamps:
            stamps[stage] = time.time()
            stamps[f"{stage}.began"] = begun
        return result

    setattr(owner, name, wrapper)


def install_stamps() -> None:
    """Stamp the stages of ``sensorfleet run`` (its modules are loaded by now)."""
    from sensorfleet import run
    from sensorfleet.node import loop, store, writer

    stamp_after(run, "check", "config_and_identity")
    stamp_after(run, "_configure_logging", "logging")
    stamp_after(store.Store, "open", "database_open")
    stamp_after(run, "build_sensors", "sensors_built")
    stamp_after(run, "_start_edges", "edges")
    stamp_after(loop.NodeLoop, "_emit", "first_reading")

    flush = writer.BufferedWriter.flush

    def first_commit(self: Any, now: float) -> bool:
        done = flush(self, now)
        if done and self.stats.rows_written and "first_commit" not in stamps:
            stamps["first_commit"] = time.time()
            # Where -X importtime's lines (stderr) stop counting: imports before the first row.
            print("startup-probe: first commit", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)  # as docker stop: flush, close, exit 0
        return done

    writer.BufferedWriter.flush = first_commit  # type: ignore[method-assign]


def main() -> None:
    stamps["interpreter"] = PROBE_STARTED
    # The command loads its subcommand's module with importlib.import_module: its imports
    # happen as they do in ``sensorfleet run`` (in its order, under its settings), and the
    # stages are stamped once that returns.
    import_module = importlib.import_module

    def import_and_stamp(name: str, package: str | None = None) -> Any:
        module = import_module(name, package)
        if name == "sensorfleet.cli.run" and "imports" not in stamps:
            stamps["imports"] = time.time()
            install_stamps()
        return module

    importlib.import_module = import_and_stamp
    import sensorfleet.cli

    status = sensorfleet.cli.main(["run", *sys.argv[1:]])
    report = {"process_started": process_started(), "exit_status": status, "stamps": stamps}
    print("startup-probe " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
