"""Hot reload: files edited every way while a real node runs, checked row by row."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from nodeproc import (
    NodeProcess,
    count_rows,
    gaps,
    http,
    http_json,
    micros,
    monitoring_url,
    rows,
    start_node,
    wait_until,
    write_config,
    write_identity,
)
from prometheus_client.parser import text_string_to_metric_families

from sensorfleet.node.clock import ManualClock
from sensorfleet.node.config import build_config
from sensorfleet.node.loop import NodeLoop

RELOAD = {"enabled": True, "check_interval_seconds": 60}
# Two firmware versions that make behaviour visible in every row: "quiet"
# never flags a reading, "loud" turns every reading into a spike.
PROFILES = {
    "firmware": {
        "quiet": {"probability_multiplier": 0.0},
        "loud": {"probability_multiplier": 20.0},
    }
}
ONLY_SPIKES = {
    "enabled": True,
    "probability": 0.05,
    "types": {
        "trend": {"enabled": False},
        "pattern": {"enabled": False},
        "missing_data": {"enabled": False},
        "noise": {"enabled": False},
    },
}
OLD = {"id": "T1", "firmware_version": "quiet", "location": "Plant A", "model": "TempVibe-2000"}
NEW = {"id": "T1-B", "firmware_version": "loud", "location": "Plant B", "model": "TempVibe-3000"}
LABELS = ("id", "firmware_version", "location", "model")


def identity_text(**fields: Any) -> str:
    data = {
        "id": "T1",
        "location": "Lab",
        "manufacturer": "SensorTech",
        "model": "TempVibe-2000",
        "firmware_version": "1.4",
        **fields,
    }
    return json.dumps(data, indent=2)


# ---- the ways people and tools change a file ------------------------------------------
def write_in_place(path: Path, text: str) -> None:
    with open(path, "w") as handle:  # truncate, then write: readers may see it empty
        handle.write(text)


def rename_over(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    os.replace(temporary, path)  # what `sed -i` and most editors do


def copy_over(path: Path, text: str) -> None:
    staged = path.parent / "staged.txt"
    staged.write_text(text)
    subprocess.run(["cp", str(staged), str(path)], check=True)


def vim_backup(path: Path, text: str) -> None:
    backup = path.with_name(f"{path.name}~")
    os.rename(path, backup)  # vim (backupcopy=no): move the original away, write anew
    path.write_text(text)
    backup.unlink()


class ConfigMapVolume:
    """The layout and atomic update of a Kubernetes ConfigMap volume.

    ``name -> ..data/name`` and ``..data -> ..<timestamp>``; an update writes a
    new timestamped folder and renames a fresh ``..data_tmp`` link over ``..data``.
    """

    def __init__(self, folder: Path, files: dict[str, str]) -> None:
        self.folder = folder
        self.files = dict(files)
        self.version = 0
        current = self._publish()
        (folder / "..data").symlink_to(current)
        for name in files:
            (folder / name).symlink_to(Path("..data") / name)

    def _publish(self) -> str:
        self.version += 1
        name = f"..2024_01_01_00_00_0{self.version}.{1000 + self.version}"
        target = self.folder / name
        target.mkdir()
        for file_name, text in self.files.items():
            (target / file_name).write_text(text)
        return name

    def update(self, file_name: str, text: str) -> None:
        old = os.readlink(self.folder / "..data")
        self.files[file_name] = text
        new = self._publish()
        link = self.folder / "..data_tmp"
        link.symlink_to(new)
        os.replace(link, self.folder / "..data")
        shutil.rmtree(self.folder / old)


EDITS: dict[str, Callable[[Path, str], None]] = {
    "in_place": write_in_place,
    "rename_over": rename_over,
    "cp_over": copy_over,
    "vim_backup": vim_backup,
}


def start_reloading_node(
    folder: Path,
    config: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> NodeProcess:
    sections: dict[str, Any] = {
        "config_reload": RELOAD,
        "profiles": PROFILES,
        "anomalies": ONLY_SPIKES,
    }
    sections.update(config or {})
    node = start_node(folder, sections, {**OLD, **(identity or {})}, preexec_fn=preexec_fn)
    node.wait_for("config reload started")
    return node


def assert_single_switch(values: list[Any], old: Any, new: Any) -> int:
    """``values`` are ``old`` up to one position and ``new`` after it; return that position."""
    assert set(values) <= {old, new}, f"unexpected values {set(values) - {old, new}}"
    assert new in values, "the new settings never reached a row"
    switch = values.index(new)
    assert all(v == old for v in values[:switch])
    assert all(v == new for v in values[switch:]), "old settings came back after the switch"
    return switch


def check_identity_switch(db: Path, edited_at: float) -> None:
    """Rows switch once from OLD to NEW, never mixing fields, and behaviour follows at once."""
    found = rows(
        db, "timestamp, sensor_id, firmware_version, location, model, anomaly_flag, anomaly_type"
    )
    labels = [tuple(row[1:5]) for row in found]
    switch = assert_single_switch(
        labels, tuple(OLD[k] for k in LABELS), tuple(NEW[k] for k in LABELS)
    )
    before, after = found[:switch], found[switch:]
    assert all(flag == 0 for *_, flag, _ in before), "quiet firmware flagged a reading"
    assert all(kind == "spike" for *_, kind in after), "loud firmware left a reading normal"
    first_new = micros(after[0][0]) / 1e6
    assert first_new - edited_at < 2.0, f"new identity took {first_new - edited_at:.2f} s"
    assert gaps([r[0] for r in found], 20_000) == [], "readings lost around the reload"


@pytest.mark.parametrize("style", [*EDITS, "configmap_symlink_swap"])
def test_identity_edit_applies_between_readings(tmp_path: Path, style: str) -> None:
    """Every way of saving the identity switches rows once, between two readings, with behaviour."""
    if style == "configmap_symlink_swap":
        volume = ConfigMapVolume(
            tmp_path,
            {
                "config.yaml": yaml.safe_dump(
                    {
                        "simulation": {"readings_per_second": 50, "seed": 1},
                        "database": {
                            "path": str(tmp_path / "data.db"),
                            "flush_interval_seconds": 0.05,
                        },
                        "logging": {"file": None, "format": "json"},
                        "monitoring": {"enabled": False},
                        "config_reload": RELOAD,
                        "profiles": PROFILES,
                        "anomalies": ONLY_SPIKES,
                    }
                ),
                "node_identity.json": identity_text(**OLD),
            },
        )
        node = NodeProcess(
            ["--config", "config.yaml", "--identity", "node_identity.json"], tmp_path
        )
        node.wait_for("config reload started")
        wait_until(lambda: count_rows(tmp_path / "data.db") > 10, what="rows")

        def edit(path: Path, text: str) -> None:
            volume.update(path.name, text)
    else:
        node = start_reloading_node(tmp_path)
        edit = EDITS[style]
    with node:
        wait_until(lambda: count_rows(tmp_path / "data.db") > 10, what="rows")
        edited_at = time.time()
        edit(tmp_path / "node_identity.json", identity_text(**NEW))
        node.wait_for("config reloaded")
        settled = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > settled + 10, what="more rows")
        assert node.stop() == 0
    assert not node.named("config reload rejected"), node.named("config reload rejected")
    reloaded = node.wait_for("identity reloaded")
    assert reloaded["changed"] == ["firmware_version", "id", "location", "model"]
    assert (reloaded["previous_sensor_id"], reloaded["sensor_id"]) == ("T1", "T1-B")
    assert len(node.named("config reloaded")) == 1
    assert os.path.realpath(tmp_path / "data.db") == str(tmp_path / "data.db")
    check_identity_switch(tmp_path / "data.db", edited_at)


def test_config_edit_changes_values_and_rate_in_one_step(tmp_path: Path) -> None:
    """Normal parameters and reading rate change together at one reading, never half-applied."""
    quiet = {"mean": 65.0, "std_dev": 0.5, "min": 60.0, "max": 70.0}
    node = start_reloading_node(
        tmp_path,
        {
            "anomalies": {"enabled": False},
            "normal_parameters": {"temperature": quiet, "voltage": {**quiet, "mean": 65.5}},
        },
    )
    with node:
        wait_until(lambda: count_rows(tmp_path / "data.db") > 10, what="rows")
        config = yaml.safe_load((tmp_path / "config.yaml").read_text())
        hot = {"mean": 165.0, "std_dev": 0.5, "min": 160.0, "max": 170.0}
        config["normal_parameters"] = {"temperature": hot, "voltage": {**hot, "mean": 165.5}}
        config["simulation"]["readings_per_second"] = 25
        rename_over(tmp_path / "config.yaml", yaml.safe_dump(config))
        event = node.wait_for("config reloaded")
        settled = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > settled + 10, what="more rows")
        assert node.stop() == 0
    assert "simulation.readings_per_second" in event["changed"]
    assert "normal_parameters.temperature.mean" in event["changed"]
    found = rows(tmp_path / "data.db", "timestamp, temperature, voltage")
    hot_rows = [(t > 100, v > 100) for _, t, v in found]
    switch = assert_single_switch(hot_rows, (False, False), (True, True))
    stamps = [r[0] for r in found]
    assert gaps(stamps[:switch], 20_000) == []
    assert gaps(stamps[switch:], 40_000) == []
    assert 20_000 <= micros(stamps[switch]) - micros(stamps[switch - 1]) <= 40_000


def test_invalid_and_half_written_edits_are_rejected_then_a_valid_one_applies(
    tmp_path: Path,
) -> None:
    """Bad files are logged with their problem line and the node keeps its last good settings."""
    node = start_reloading_node(tmp_path)
    config_path, identity_path = tmp_path / "config.yaml", tmp_path / "node_identity.json"
    good_config = config_path.read_text()
    with node:
        bad = yaml.safe_load(good_config)
        bad["anomalies"]["probability"] = 2
        rename_over(config_path, yaml.safe_dump(bad))
        first = node.wait_for("config reload rejected")
        assert first["problem"] == (
            "config.yaml: anomalies.probability: must be between 0 and 1 (got 2)"
        )
        rename_over(config_path, good_config)  # fixed again: nothing to apply
        rename_over(identity_path, identity_text(**NEW)[:40])  # a half-written file
        second = node.wait_for("config reload rejected", count=2)
        assert second["problem"].startswith("node_identity.json: (top level): invalid JSON")
        rename_over(identity_path, "")
        third = node.wait_for("config reload rejected", count=3)
        assert third["problem"] == (
            "node_identity.json: (top level): file is empty; expected a JSON mapping"
        )
        identity_path.unlink()
        fourth = node.wait_for("config reload rejected", count=4)
        assert fourth["problem"] == "node_identity.json: (file): identity file not found"
        before = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > before + 10, what="rows go on")
        assert not node.named("config reloaded")
        edited_at = time.time()
        write_in_place(identity_path, identity_text(**NEW))
        node.wait_for("config reloaded")
        settled = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > settled + 10, what="more rows")
        assert node.stop() == 0
    assert all(
        e["action"] == "keeping the last good settings"
        for e in node.named("config reload rejected")
    )
    check_identity_switch(tmp_path / "data.db", edited_at)


def test_pipes_deep_nesting_and_zero_weights_are_rejected_edits(tmp_path: Path) -> None:
    """A FIFO never blocks the watcher; deep nesting and all-zero weights are rejected edits."""
    node = start_reloading_node(tmp_path)
    config_path = tmp_path / "config.yaml"
    good = yaml.safe_load(config_path.read_text())
    with node:
        pipe = tmp_path / "pipe"
        os.mkfifo(pipe)
        os.replace(pipe, config_path)
        first = node.wait_for("config reload rejected")
        assert first["problem"] == (
            "config.yaml: (file): is a named pipe (FIFO), not a regular file; "
            "expected the config file"
        )
        rename_over(config_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
        second = node.wait_for("config reload rejected", count=2)
        assert second["problem"].startswith("config.yaml: (top level): nested too deeply")
        zero = {"temperature": 0, "vibration": 0, "voltage": 0}
        bad = {**good, "profiles": {"firmware": {"quiet": {"parameter_weights": zero}}}}
        rename_over(config_path, yaml.safe_dump(bad))
        third = node.wait_for("config reload rejected", count=3)
        assert (
            "parameter_weights: at least one parameter needs a weight above 0" in (third["problem"])
        )
        good["simulation"]["readings_per_second"] = 60
        rename_over(config_path, yaml.safe_dump(good))  # the watcher still works
        node.wait_for("config reloaded")
        assert node.stop() == 0
    assert not node.named("config reload failed") and not node.named("command failed")


def test_rapid_successive_edits_end_on_the_last_one(tmp_path: Path) -> None:
    """Ten quick saves apply in order (some may be skipped) and the last one wins."""
    node = start_reloading_node(tmp_path, identity={"firmware_version": "v0"})
    identity_path = tmp_path / "node_identity.json"
    with node:
        for version in range(1, 11):
            style = (write_in_place, rename_over)[version % 2]
            style(identity_path, identity_text(firmware_version=f"v{version}"))
            time.sleep(0.01)
        wait_until(
            lambda: rows(tmp_path / "data.db", "firmware_version")[-1] == ("v10",),
            what="last version in rows",
        )
        settled = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > settled + 10, what="more rows")
        assert node.stop() == 0
    versions = [int(fw[1:]) for (fw,) in rows(tmp_path / "data.db", "firmware_version")]
    assert versions == sorted(versions), "an older edit overtook a newer one"
    assert versions[-10:] == [10] * 10
    assert 1 <= len(node.named("config reloaded")) <= 10


def test_polling_applies_edits_when_file_events_are_off(tmp_path: Path) -> None:
    """With watch_events off (NFS, bind mounts) the poll picks up an edit within its interval."""
    node = start_reloading_node(
        tmp_path,
        {"config_reload": {"enabled": True, "check_interval_seconds": 0.3, "watch_events": False}},
    )
    with node:
        assert node.wait_for("config reload started")["events"] is False
        edited_at = time.time()
        write_in_place(tmp_path / "node_identity.json", identity_text(**NEW))
        node.wait_for("config reloaded", timeout=5)
        settled = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > settled + 10, what="more rows")
        assert node.stop() == 0
    check_identity_switch(tmp_path / "data.db", edited_at)


CLONE_NEWUSER = 0x10000000
INOTIFY_LIMITS = Path("/proc/sys/user")
MONITORING = {"enabled": True, "host": "127.0.0.1", "port": 0}


def _in_user_namespace(**limits: int) -> Callable[[], None]:
    """A preexec_fn: the child gets a user namespace of its own with inotify limits
    (``max_inotify_instances``, ``max_inotify_watches``) set, as on a host whose
    containers of one uid used them up."""

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        for name, value in limits.items():
            (INOTIFY_LIMITS / name).write_text(str(value))

    return enter


def _set_limit_in_namespace_of(pid: int, name: str, value: int) -> None:
    """Raise an inotify limit inside the user namespace of process ``pid`` (the host
    administrator's sysctl, seen from that node)."""

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/proc/{pid}/ns/user") as namespace:
            if libc.setns(namespace.fileno(), CLONE_NEWUSER) != 0:
                raise OSError(ctypes.get_errno(), "setns(CLONE_NEWUSER)")
        (INOTIFY_LIMITS / name).write_text(str(value))

    subprocess.run(["true"], preexec_fn=enter, check=True)


def _needs_user_namespaces() -> None:
    try:
        probe = subprocess.run(
            ["true"], preexec_fn=_in_user_namespace(max_inotify_instances=0), check=False
        )
        available = probe.returncode == 0
    except (OSError, subprocess.SubprocessError):
        available = False
    if not available:
        pytest.skip(
            "needs unprivileged user namespaces to cap inotify limits "
            "(sysctl kernel.unprivileged_userns_clone=1, or run as root)"
        )


def watch_mode(node: NodeProcess) -> tuple[str, float]:
    """The node's watch mode as /status says it, and the 1-valued mode in /metrics."""
    url = monitoring_url(node)
    _, status = http_json("GET", f"{url}/status")
    _, _, body = http("GET", f"{url}/metrics")
    current = [
        sample.labels["mode"]
        for family in text_string_to_metric_families(body.decode())
        if family.name == "sensorfleet_config_watch_mode"
        for sample in family.samples
        if sample.value == 1.0
    ]
    assert len(current) == 1, current
    assert status["reloads"]["watch_mode"] == current[0]
    return current[0], status["reloads"]


def test_a_node_out_of_inotify_instances_polls_instead_of_crashing(tmp_path: Path) -> None:
    """With no inotify instance to be had (fs.inotify.max_user_instances used up by a
    fleet's containers), the node warns once, polls, says so in /status and /metrics, and
    still applies edits."""
    _needs_user_namespaces()
    node = start_reloading_node(
        tmp_path,
        {
            "config_reload": {"enabled": True, "check_interval_seconds": 0.3},
            "monitoring": MONITORING,
        },
        preexec_fn=_in_user_namespace(max_inotify_instances=0),
    )
    with node:
        warning = node.wait_for("file events unavailable, polling only")
        assert warning["level"] == "warning" and "inotify" in warning["error"]
        assert warning["retry_seconds"] == 600
        started = node.wait_for("config reload started")
        assert started["events"] is False and started["watch_mode"] == "polling_fallback"
        mode, reloads = watch_mode(node)
        assert mode == "polling_fallback" and "inotify" in reloads["events_error"]
        for firmware in ("edit-1", "edit-2", "edit-3"):
            write_in_place(
                tmp_path / "node_identity.json", identity_text(firmware_version=firmware)
            )
            wait_until(
                lambda firmware=firmware: (
                    rows(tmp_path / "data.db", "firmware_version")[-1] == (firmware,)
                ),
                timeout=5,
                what=f"rows with firmware {firmware}",
            )
        assert node.stop() == 0
    # Ten and more polls later, still the one warning (it used to repeat at every poll).
    assert len(node.named("file events unavailable, polling only")) == 1
    assert not node.named("cannot watch folder, polling it")
    assert len(node.named("config reloaded")) == 3


def test_a_node_refused_inotify_watches_polls_and_takes_events_back(tmp_path: Path) -> None:
    """When the kernel grants an inotify instance but refuses the watch itself
    (max_user_watches used up), the node warns once and polls; once the limit is raised
    it logs that events work again at its next retry and applies an edit by event."""
    _needs_user_namespaces()
    node = start_reloading_node(
        tmp_path,
        {
            # A one-minute poll: an edit applied within seconds was applied by an event.
            "config_reload": {
                "enabled": True,
                "check_interval_seconds": 60,
                "events_retry_seconds": 1,
            },
            "monitoring": MONITORING,
        },
        preexec_fn=_in_user_namespace(max_inotify_watches=0),
    )
    with node:
        warning = node.wait_for("file events unavailable, polling only")
        assert "inotify watch limit reached" in warning["error"]
        assert watch_mode(node)[0] == "polling_fallback"
        time.sleep(3)  # a few retries, refused again without a word above debug
        # The administrator raises the limit; the next retry takes events back.
        _set_limit_in_namespace_of(node.proc.pid, "max_inotify_watches", 8192)
        node.wait_for("file events available again", timeout=10)
        mode, reloads = watch_mode(node)
        assert mode == "events" and reloads["events_error"] is None
        write_in_place(tmp_path / "node_identity.json", identity_text(firmware_version="evented"))
        wait_until(
            lambda: rows(tmp_path / "data.db", "firmware_version")[-1] == ("evented",),
            timeout=10,
            what="the edit applied by a change event",
        )
        assert node.stop() == 0
    assert len(node.named("file events unavailable, polling only")) == 1
    assert len(node.named("file events available again")) == 1


def test_restart_only_settings_are_kept_and_logged_level_applies(tmp_path: Path) -> None:
    """Database path and run time need a restart (logged, old value kept); log level is live."""
    node = start_reloading_node(tmp_path, {"simulation": {"run_time_seconds": 600}})
    config_path = tmp_path / "config.yaml"
    with node:
        config = yaml.safe_load(config_path.read_text())
        config["database"]["path"] = "other.db"
        config["simulation"]["run_time_seconds"] = 5
        config["logging"]["level"] = "DEBUG"
        rename_over(config_path, yaml.safe_dump(config))
        node.wait_for("config reloaded")
        node.wait_for("batch written", count=3)  # DEBUG events appear at once
        # Had the 5 s run time applied, the node would stop once 5 s of readings are out;
        # rows on its 50/s schedule say when 6 s have passed since it started.
        wait_until(lambda: count_rows(tmp_path / "data.db") >= 6 * 50, what="6 s of readings")
        assert node.proc.poll() is None, "run time must not change while running"
        assert node.stop() == 0
    restart = {e["key"]: e for e in node.named("setting needs restart")}
    assert set(restart) == {"database.path", "simulation.run_time_seconds"}
    assert restart["database.path"]["running"] == str(tmp_path / "data.db")
    assert restart["database.path"]["requested"] == str(tmp_path / "other.db")
    assert restart["simulation.run_time_seconds"]["running"] == 600
    assert not (tmp_path / "other.db").exists()
    assert count_rows(tmp_path / "data.db") == node.summary()["rows_written"]


def test_no_op_edits_are_ignored(tmp_path: Path) -> None:
    """Touching a file, rewriting the same bytes or adding a comment reloads nothing."""
    node = start_reloading_node(tmp_path)
    config_path = tmp_path / "config.yaml"
    identity_path = tmp_path / "node_identity.json"
    with node:
        os.utime(identity_path)
        write_in_place(identity_path, identity_path.read_text())
        rename_over(config_path, config_path.read_text() + "\n# a comment only\n")
        copy_over(identity_path, identity_path.read_text())
        before = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > before + 25, what="rows")
        assert node.stop() == 0
    assert not node.named("config reloaded")
    assert not node.named("config reload rejected")


def test_reload_disabled_ignores_edits(tmp_path: Path) -> None:
    """config_reload.enabled: false leaves the running settings alone."""
    node = start_node(
        tmp_path,
        {"config_reload": {"enabled": False}, "profiles": PROFILES, "anomalies": ONLY_SPIKES},
        OLD,
    )
    with node:
        rename_over(tmp_path / "node_identity.json", identity_text(**NEW))
        before = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > before + 30, what="rows")
        assert node.stop() == 0
    assert node.named("config reload off")
    assert not node.named("config reload started")
    assert set(rows(tmp_path / "data.db", "firmware_version")) == {("quiet",)}


def test_one_identity_of_a_folder_changes_alone(tmp_path: Path) -> None:
    """Editing one sensor's file changes only that sensor; a duplicate id is refused."""
    write_config(
        tmp_path / "config.yaml",
        simulation={"readings_per_second": 20, "seed": 3},
        anomalies={"enabled": False},
        database={"path": "data.db", "flush_interval_seconds": 0.05},
        config_reload=RELOAD,
    )
    folder = tmp_path / "identities"
    folder.mkdir()
    write_identity(folder / "a.json", id="A", firmware_version="1.3")
    write_identity(folder / "b.json", id="B", firmware_version="1.3")
    node = NodeProcess(["--config", "config.yaml", "--identity", "identities"], tmp_path)
    with node:
        node.wait_for("config reload started")
        rename_over(folder / "b.json", identity_text(id="A", firmware_version="1.4"))
        rejected = node.wait_for("config reload rejected")
        assert "duplicates the id" in rejected["problem"]
        rename_over(folder / "b.json", identity_text(id="B", firmware_version="1.4"))
        node.wait_for("config reloaded")
        wait_until(
            lambda: ("B", "1.4") in rows(tmp_path / "data.db", "sensor_id, firmware_version"),
            what="new firmware on B",
        )
        settled = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > settled + 10, what="more rows")
        assert node.stop() == 0
    by_sensor = rows(tmp_path / "data.db", "sensor_id, firmware_version")
    assert {fw for sid, fw in by_sensor if sid == "A"} == {"1.3"}
    b_versions = [fw for sid, fw in by_sensor if sid == "B"]
    assert_single_switch(b_versions, "1.3", "1.4")
    assert node.wait_for("identity reloaded")["file"] == "identities/b.json"


def test_reconfigure_keeps_restart_only_keys() -> None:
    """NodeLoop.reconfigure returns keys read only at start and keeps their running values."""
    start = 1_700_000_000.0
    config = build_config({"database": {"path": "/tmp/never-opened-a.db"}}, "t")
    loop = NodeLoop(config, [], ManualClock(start))
    changed = build_config(
        {
            "database": {"path": "/tmp/never-opened-b.db", "batch_size": 7},
            "simulation": {"run_time_seconds": 9, "seed": 4},
            "monitoring": {"port": 9999},
            "logging": {"level": "DEBUG"},
        },
        "t",
    )
    kept = loop.reconfigure(changed, {})
    assert sorted(kept) == [
        "database.path",
        "monitoring.port",
        "simulation.run_time_seconds",
        "simulation.seed",
    ]
    assert loop.config.database.path == "/tmp/never-opened-a.db"
    assert loop.config.simulation.run_time_seconds is None
    assert loop.config.database.batch_size == 7
    assert loop.config.logging.level == "DEBUG"


def test_turning_reload_off_in_the_file_stops_watching(tmp_path: Path) -> None:
    """An edit that sets config_reload.enabled: false applies, then later edits are ignored."""
    node = start_reloading_node(tmp_path)
    config_path = tmp_path / "config.yaml"
    with node:
        config = yaml.safe_load(config_path.read_text())
        config["config_reload"]["enabled"] = False
        config["normal_parameters"] = {
            "temperature": {"mean": 20.0, "std_dev": 0.1, "min": 19.0, "max": 21.0}
        }
        rename_over(config_path, yaml.safe_dump(config))
        node.wait_for("config reload stopped")
        rename_over(tmp_path / "node_identity.json", identity_text(**NEW))
        before = count_rows(tmp_path / "data.db")
        wait_until(lambda: count_rows(tmp_path / "data.db") > before + 30, what="rows")
        assert node.stop() == 0
    assert len(node.named("config reloaded")) == 1
    found = rows(tmp_path / "data.db", "temperature < 30, firmware_version")
    assert_single_switch([cold for cold, _ in found], 0, 1)
    assert {fw for _, fw in found} == {OLD["firmware_version"]}
