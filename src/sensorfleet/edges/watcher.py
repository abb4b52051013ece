"""Hot reload: watch the config and identity files, validate edits in full, apply them live.

Editors and orchestrators change files in many ways: writing in place,
saving a temporary file and renaming it over (vim, ``sed -i``), ``cp`` over,
or Kubernetes swapping a ``..data`` symlink under a ConfigMap volume. So the
watcher follows the *folders* holding the files (and the folders their
symlinks point into), and treats any event on a name that leads to a watched
file as "look again". A content hash skips no-op events; every file is then
validated in full with the same overrides the node started with. A valid
change goes to the node loop as one command, so it lands between two
readings; an invalid or half-written file is rejected with its problem line
and the node keeps its last good settings. Polling every
``config_reload.check_interval_seconds`` covers filesystems that deliver no
events at all, and a kernel that refuses file events (no inotify instance or
watch left for this user): the node then warns once, polls, and asks for events
again every ``config_reload.events_retry_seconds``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from .. import logs
from .._schema import as_data
from ..errors import InputError
from ..node.config import Config, ConfigReload
from ..node.identity import Identity
from ..node.inputs import NodeInputs, file_digest
from ..node.loop import NodeLoop

if TYPE_CHECKING:
    from ..equipment import Catalogue

log = structlog.get_logger("sensorfleet.reload")

QUIET_SECONDS = 0.05  # an edit is read once its file has been quiet this long
MAX_SETTLE_SECONDS = 0.5  # ... or after this long, however busy the folder is
MAX_LOGGED_KEYS = 20

# Events our own reads cause; reacting to them would loop forever.
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})

# With inotify, ask the kernel only for what marks a finished edit: names appearing,
# going or moving, and a file closed after writing. This leaves out the stream of
# modify events a database in the same folder causes on every commit.
_INOTIFY_EVENTS: list[type[FileSystemEvent]] | None = (
    [
        FileCreatedEvent,
        DirCreatedEvent,
        FileMovedEvent,
        DirMovedEvent,
        FileDeletedEvent,
        DirDeletedEvent,
        FileClosedEvent,
    ]
    if sys.platform.startswith("linux")
    else None
)


# How a node notices edits:
#   events            change events, plus the poll every check interval
#   polling           the poll only, as config_reload.watch_events: false asks
#   polling_fallback  the poll only, because the kernel refused change events; retrying
#   off               not at all (reloading disabled, or no file to watch)
WatchMode = Literal["events", "polling", "polling_fallback", "off"]
WATCH_MODES: tuple[WatchMode, ...] = ("events", "polling", "polling_fallback", "off")

# A folder that vanished between stat() and the watch: the next check looks again.
_FOLDER_GONE = frozenset({errno.ENOENT, errno.ENOTDIR})


@dataclass
class ReloadStats:
    """What the reloader did; read by the status and metrics endpoints."""

    applied: int = 0
    rejected: int = 0
    last_applied_at: float | None = None
    last_rejected_at: float | None = None
    last_problems: list[str] = field(default_factory=list)
    watch_mode: WatchMode = "off"
    # Why the kernel last refused change events (set in polling_fallback).
    events_error: str | None = None


def _link_chain(path: str) -> set[str]:
    """``path``, every symlink met while resolving it, and where it finally leads.

    For a ConfigMap file ``/cfg/config.yaml -> ..data/config.yaml`` with
    ``/cfg/..data -> ..2024_01_01_00_00_00.1``, this includes ``/cfg/..data``:
    the name Kubernetes renames over when it publishes a new version.
    """
    found = {path, os.path.realpath(path)}
    pending = [path]
    seen: set[str] = set()
    while pending and len(seen) < 40:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        prefix = os.sep
        for part in current.strip(os.sep).split(os.sep):
            prefix = os.path.join(prefix, part)
            if os.path.islink(prefix):
                found.add(prefix)
                target = os.path.join(os.path.dirname(prefix), os.readlink(prefix))
                rest = os.path.relpath(current, prefix)
                pending.append(os.path.normpath(os.path.join(target, rest)))
                break
    return found


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def changed_keys(old: Config | Identity, new: Config | Identity) -> list[str]:
    """Dotted keys whose values differ between two validated settings."""
    before = _flatten(as_data(old, display=True))
    after = _flatten(as_data(new, display=True))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class _EventHandler(FileSystemEventHandler):
    def __init__(self, reloader: Reloader) -> None:
        self.reloader = reloader

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        relevant = self.reloader.relevant
        paths = (event.src_path, getattr(event, "dest_path", "") or "")
        if any(os.fsdecode(p) in relevant for p in paths if p):
            self.reloader.notify()


class Reloader:
    """Watches the node's files and applies valid edits through ``NodeLoop.submit``."""

    def __init__(self, loop: NodeLoop, inputs: NodeInputs, settings: ConfigReload) -> None:
        self.loop = loop
        self.inputs = inputs
        self.settings = settings
        # Wall-clock stamps come from the loop's clock (simulated in tests); the settle
        # waits and the reload delay are real elapsed time, measured with time.monotonic.
        self.clock = loop.clock
        self.stats = ReloadStats()
        self.relevant: frozenset[str] = frozenset()
        self._config = loop.config
        self._catalogue = loop.catalogue
        self._identities = {v.source: v.identity for v in loop.sensor_views() if v.source}
        self._digests: dict[str, str | None] = {}
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._watches: dict[str, tuple[Any, tuple[int, int]]] = {}
        self._changed_at: float | None = None
        self._events_retry_at: float | None = None  # monotonic; set while events are refused

    # ---- lifecycle ------------------------------------------------------------------
    def start(self, baseline: Mapping[str, str | None] | None = None) -> None:
        """Start watching, from ``baseline`` (``NodeInputs.digests`` when the node read its
        files) or else the files' current state: an edit made between the node reading
        its files and this start is then applied too, as soon as the watcher runs."""
        current = {path: file_digest(path) for path in self._files()}
        self._digests = {**current, **(baseline or {})}
        if any(self._digests.get(path) != digest for path, digest in current.items()):
            self.notify()
        self._refresh_relevant()
        if self.settings.watch_events:
            self._start_observer()
        else:
            self.stats.watch_mode = "polling"
        self._thread = threading.Thread(target=self._run, name="sensorfleet-reload", daemon=True)
        self._thread.start()
        log.info(
            "config reload started",
            files=self._files(),
            events=self._observer is not None,
            watch_mode=self.stats.watch_mode,
            check_interval_seconds=self.settings.check_interval_seconds,
        )

    def stop(self) -> None:
        """Stop watching; safe to call twice."""
        self._stopped.set()
        self._changed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._stop_observer()
        self.stats.watch_mode = "off"

    def notify(self) -> None:
        """Something changed on disk (called from the observer thread)."""
        if self._changed_at is None:
            self._changed_at = time.monotonic()
        self._changed.set()

    # ---- watching -------------------------------------------------------------------
    def _start_observer(self) -> None:
        """Ask for change events on every watched folder, or fall back to polling.

        Where the kernel says no depends on the machine and the watchdog version:
        creating or starting the observer, or scheduling a folder (inotify instances
        are fs.inotify.max_user_instances per user, 128 on many hosts, and a fleet of
        one image's containers shares one uid; watches are max_user_watches). Every
        one of these is the same state: warn once, poll, retry on a slow schedule.
        """
        try:
            observer = Observer()
            observer.daemon = True
            observer.start()
        except OSError as exc:
            self._refuse_events(exc)
            return
        self._observer = observer
        if self._sync_watches() and self._observer is not None:
            self._accept_events()

    def _accept_events(self) -> None:
        if self.stats.watch_mode == "polling_fallback":
            log.info("file events available again", watch_mode="events")
        self.stats.watch_mode = "events"
        self.stats.events_error = None
        self._events_retry_at = None

    def _refuse_events(self, exc: OSError) -> None:
        """Poll only until the next retry; the warning is written on entering the state."""
        self._stop_observer()
        retry = self.settings.events_retry_seconds
        self._events_retry_at = time.monotonic() + retry
        if self.stats.watch_mode == "polling_fallback":
            log.debug("file events still unavailable", error=str(exc), retry_seconds=retry)
            return
        self.stats.watch_mode = "polling_fallback"
        self.stats.events_error = str(exc)
        log.warning(
            "file events unavailable, polling only",
            error=str(exc),
            check_interval_seconds=self.settings.check_interval_seconds,
            retry_seconds=retry,
            fix="raise fs.inotify.max_user_instances or max_user_watches on the host",
        )

    def _retry_events(self) -> None:
        """While events are refused, ask again once the retry time has come."""
        due = self._events_retry_at
        if due is not None and time.monotonic() >= due and self.settings.watch_events:
            self._start_observer()

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        self._watches = {}
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def _files(self) -> list[str]:
        """The config and identity files, and the catalogue files the settings in force name."""
        return self.inputs.watched_files(self._config)

    def _refresh_relevant(self) -> None:
        relevant: set[str] = set()
        for path in self._files():
            relevant |= _link_chain(path)
        self.relevant = frozenset(relevant)

    def _sync_watches(self) -> bool:
        """Watch every folder holding a relevant name; re-watch folders that were replaced.

        False when the kernel refused a watch: the reloader then polls (see
        ``_refuse_events``)."""
        if self._observer is None:
            return True
        wanted: dict[str, tuple[int, int]] = {}
        for path in self.relevant:
            folder = os.path.dirname(path)
            try:
                stat = os.stat(folder)
            except OSError:
                continue
            wanted[folder] = (stat.st_dev, stat.st_ino)
        for folder, (watch, inode) in list(self._watches.items()):
            if wanted.get(folder) != inode:
                del self._watches[folder]
                # A folder that is gone took its watch with it.
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(watch)
        for folder, inode in wanted.items():
            if folder in self._watches:
                continue
            try:
                watch = self._observer.schedule(
                    _EventHandler(self), folder, recursive=False, event_filter=_INOTIFY_EVENTS
                )
            except OSError as exc:
                if exc.errno in _FOLDER_GONE:
                    continue
                self._refuse_events(exc)
                return False
            self._watches[folder] = (watch, inode)
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            woke = self._changed.wait(self._next_wait())
            if self._stopped.is_set():
                return
            if woke:
                self._settle()
            self._changed.clear()
            try:
                self._retry_events()
                self.check()
            except Exception as exc:  # the watcher must outlive any surprise
                log.error("config reload failed", error=str(exc), error_class=type(exc).__name__)

    def _next_wait(self) -> float:
        """Until the next poll, or the next retry of change events if that comes sooner."""
        wait = self.settings.check_interval_seconds
        if self._events_retry_at is not None:
            wait = min(wait, max(0.0, self._events_retry_at - time.monotonic()))
        return wait

    def _settle(self) -> None:
        """Wait until the files have been quiet briefly, so a write in progress finishes."""
        deadline = time.monotonic() + MAX_SETTLE_SECONDS
        while not self._stopped.is_set():
            self._changed.clear()
            if not self._changed.wait(QUIET_SECONDS) or time.monotonic() >= deadline:
                return

    # ---- checking -------------------------------------------------------------------
    def check(self) -> str:
        """Look at the files once; return unchanged, same, rejected or applied."""
        detected_at, self._changed_at = self._changed_at, None
        files = self._files()
        digests = {path: file_digest(path) for path in files}
        self._refresh_relevant()
        self._sync_watches()
        if digests == self._digests:
            return "unchanged"
        edited = [p for p in files if digests[p] != self._digests.get(p)]
        self._digests = digests
        try:
            settings = self.inputs.load()
        except InputError as exc:
            self._reject(exc, edited)
            return "rejected"
        config, identities = settings.config, settings.by_file()
        config_changes = changed_keys(self._config, config)
        identity_changes = {
            path: changed_keys(self._identities[path], identity)
            for path, identity in identities.items()
            if path in self._identities and identity != self._identities[path]
        }
        catalogue = settings.catalogue
        if _models(catalogue) != _models(self._catalogue):
            config_changes.append("equipment catalogue")
        if not config_changes and not identity_changes:
            log.debug("config files touched, settings unchanged", files=edited)
            return "same"
        before = (self._config, dict(self._identities), edited, self._catalogue)
        self._config = config
        self._catalogue = catalogue
        self._identities.update(identities)
        started = detected_at if detected_at is not None else time.monotonic()
        self.loop.submit(
            lambda loop: self._apply(
                loop,
                config,
                identities,
                config_changes,
                identity_changes,
                started,
                before,
                catalogue,
            )
        )
        self._follow_own_settings(config.config_reload)
        return "applied"

    def _apply(
        self,
        loop: NodeLoop,
        config: Config,
        identities: dict[str, Identity],
        config_changes: list[str],
        identity_changes: dict[str, list[str]],
        started: float,
        before: tuple[Config, dict[str, Identity], list[str], Catalogue | None],
        catalogue: Catalogue | None = None,
    ) -> None:
        """Runs in the loop thread, between two readings."""
        previous = loop.config
        old_ids = {v.source: v.identity.id for v in loop.sensor_views() if v.source}
        try:
            kept = loop.reconfigure(config, identities, catalogue)
        except InputError as exc:  # a new sensor id that a live node writes
            self._config, self._identities, edited, self._catalogue = before
            self._reject(exc, edited)
            return
        logs.set_level(loop.config.logging.level)
        self.stats.applied += 1
        self.stats.last_applied_at = self.clock.now()
        for path, keys in identity_changes.items():
            log.info(
                "identity reloaded",
                file=path,
                sensor_id=identities[path].id,
                previous_sensor_id=old_ids.get(path),
                changed=keys,
            )
        log.info(
            "config reloaded",
            changed=config_changes[:MAX_LOGGED_KEYS],
            changed_count=len(config_changes),
            identities_changed=len(identity_changes),
            config_hash=loop.config.digest(),
            delay_ms=round((time.monotonic() - started) * 1000, 1),
        )
        for warning in config.warnings():
            log.warning("config warning", problem=warning)
        for key in kept:
            log.warning(
                "setting needs restart",
                key=key,
                running=_lookup(previous, key),
                requested=_lookup(config, key),
            )

    def _reject(self, exc: InputError, files: list[str]) -> None:
        self.stats.rejected += 1
        self.stats.last_rejected_at = self.clock.now()
        self.stats.last_problems = list(exc.problems)
        log.error(
            "config reload rejected",
            problem=exc.problems[0],
            problems=exc.problems,
            files=files,
            action="keeping the last good settings",
        )

    def _follow_own_settings(self, settings: ConfigReload) -> None:
        """Apply edits of the ``config_reload`` section to the watcher itself."""
        old, self.settings = self.settings, settings
        if not settings.enabled:
            log.info("config reload stopped", reason="config_reload.enabled is false")
            self._stopped.set()
            self._stop_observer()
            self.stats.watch_mode = "off"
        elif settings.watch_events and not old.watch_events:
            self._start_observer()
        elif not settings.watch_events and old.watch_events:
            self._stop_observer()
            self._events_retry_at = None
            self.stats.watch_mode = "polling"
            self.stats.events_error = None


def _models(catalogue: Catalogue | None) -> dict[str, object]:
    """What a catalogue defines, comparable across loads (each load compiles new objects)."""
    if catalogue is None:
        return {}
    return {name: model.spec for name, model in catalogue.models.items()}


def _lookup(config: Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part, None)
    return node


def start_reloader(
    loop: NodeLoop,
    inputs: NodeInputs,
    settings: ConfigReload,
    baseline: Mapping[str, str | None] | None = None,
) -> Reloader | None:
    """Start watching when ``config_reload.enabled`` (from ``baseline``, see
    ``Reloader.start``); None when there is nothing to do."""
    if not settings.enabled:
        log.info("config reload off", reason="config_reload.enabled is false")
        return None
    if not inputs.files:
        return None  # built-in defaults only: no file to watch
    reloader = Reloader(loop, inputs, settings)
    reloader.start(baseline)
    return reloader
