"""What every face shares: a server on its own thread and loop, fed by a queue.

``Face`` is what the node loop sees (a ``ReadingListener``): ``publish`` and
``reconfigured`` only append to a deque and, when the face's loop is idle,
wake it with ``call_soon_threadsafe``. The protocol part, a ``FaceServer``, is
imported and built on the face's own thread, so neither the protocol library's
import nor building the address space delays the node. The face's loop
drains the deque in order: every reading reaches the server in the order it
was written, each with its own timestamp, however the node batched them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from ... import logs
from ...node.config import Config
from ...node.identity import Identity
from ...node.readings import Block, Readings

if TYPE_CHECKING:
    from ...equipment import EquipmentModel
    from ...node.machine import MachineBlock

log = structlog.get_logger("sensorfleet.faces")

# Blocks waiting for a face that cannot keep up; beyond this the newest are skipped
# (and counted) rather than letting memory grow without bound.
MAX_BACKLOG_BLOCKS = 200_000
# During a large backlog, let the server answer clients every this many blocks.
YIELD_EVERY = 100
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Reading:
    """One reading exactly as written to SQLite (NaN where the row holds NULL)."""

    time_us: int
    temperature: float
    vibration: float
    voltage: float
    kind: int  # 0 normal, else the anomaly code (``readings.KIND_NAMES``)


def readings_of(block: Block) -> Iterator[Reading]:
    """The readings of ``block`` that produce a row, oldest first."""
    times, values, kinds = block.times_us, block.values, block.kinds
    if block.keep is not None and not block.keep.all():
        times, values, kinds = times[block.keep], values[block.keep], kinds[block.keep]
    for time_us, (temperature, vibration, voltage), kind in zip(
        times.tolist(), values.tolist(), kinds.tolist(), strict=True
    ):
        yield Reading(time_us, temperature, vibration, voltage, kind)


@dataclass(frozen=True)
class MachineReading:
    """One equipment reading as written: channels in catalogue order (NaN where the row
    holds NULL) and its ground truth (served only while the labels are inline)."""

    time_us: int
    channels: tuple[float, ...]
    state: str
    fault: str | None
    fault_severity: float
    instrument_fault: str | None
    health: float
    rul_seconds: float  # NaN while healthy
    maintenance: bool


def machine_readings(block: MachineBlock) -> Iterator[MachineReading]:
    """The readings of an equipment block, oldest first."""
    data = block.data
    channels = [data.channels[c.name].tolist() for c in block.model.channels]
    state, fault, severity, _started, instrument, health, rul, maintenance = block.truth_columns()
    for i, time_us in enumerate(block.times_us.tolist()):
        yield MachineReading(
            time_us,
            tuple(values[i] for values in channels),
            state[i],
            fault[i],
            severity[i],
            instrument[i],
            health[i],
            rul[i],
            bool(maintenance[i]),
        )


@dataclass(frozen=True)
class _Reconfigure:
    config: Config
    identities: list[Identity]


class FaceServer(ABC):
    """The protocol part of a face, built and run on the face's own thread and loop.

    ``models`` holds, per identity, its equipment model (None for a classic sensor).
    """

    def __init__(
        self,
        config: Config,
        identities: Sequence[Identity],
        host: str,
        port: int,
        models: Sequence[EquipmentModel | None] = (),
    ):
        self.config = config
        self.identities = list(identities)
        self.host = host
        self.port = port
        self.models = list(models) or [None] * len(self.identities)

    @property
    def labels_hidden(self) -> bool:
        """Ground truth stays out of the faces too when the labels are hidden."""
        return self.config.labels.mode == "hidden"

    @abstractmethod
    async def serve(self) -> int:
        """Build the address space, bind and start serving; return the bound port."""

    @abstractmethod
    async def apply(self, position: int, block: Readings) -> int:
        """Serve the readings of ``block``; return how many were published."""

    @abstractmethod
    async def reconfigure(self, config: Config, identities: Sequence[Identity]) -> None:
        """New settings in force; update what depends on them."""

    @abstractmethod
    async def close(self) -> None:
        """Stop the server."""

    def describe(self) -> dict[str, object]:
        """Extra fields of the ``<name> started`` event."""
        return {}


ServerFactory = Callable[
    [Config, Sequence[Identity], str, int, Sequence["EquipmentModel | None"]], FaceServer
]


class Face:
    """One protocol server serving the node's readings; a ``ReadingListener``.

    ``factory`` imports and builds the ``FaceServer``; it runs on the face's thread.
    """

    def __init__(
        self,
        name: str,
        title: str,
        factory: ServerFactory,
        config: Config,
        identities: Sequence[Identity],
        models: Sequence[EquipmentModel | None] = (),
    ) -> None:
        settings = getattr(config, name)
        self.name = name  # config section and log event prefix: "opcua", "modbus"
        self.title = title  # for people: "OPC UA", "Modbus TCP"
        self.host: str = settings.host
        self.port: int = settings.port
        self.bound_port: int | None = None
        self.readings_published = 0
        self.blocks_skipped = 0
        self.ready = threading.Event()  # set once serving, or once it gave up
        self._factory = factory
        self._config = config
        self._identities = list(identities)
        self._models = list(models)
        self._server: FaceServer | None = None
        self._inbox: deque[tuple[int, Readings] | _Reconfigure] = deque()
        # Until the server is up no client can be subscribed: keep only each sensor's
        # newest block (its current value) instead of a backlog to catch up on.
        self._early: dict[int, Readings] | None = {}
        self._early_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._signalled = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"sensorfleet-{name}")
        self._thread.daemon = True

    # ---- called from the node loop's thread ------------------------------------------
    def publish(self, position: int, block: Readings) -> None:
        """Queue the readings of the sensor at ``position``; never blocks."""
        if self._early is not None:
            with self._early_lock:
                if self._early is not None:
                    self._early[position] = block
                    return
        if len(self._inbox) >= MAX_BACKLOG_BLOCKS:
            self.blocks_skipped += 1
            if self.blocks_skipped == 1 or self.blocks_skipped % 10_000 == 0:
                log.warning(
                    f"{self.name} behind",
                    blocks_skipped=self.blocks_skipped,
                    backlog=len(self._inbox),
                    action="skipping readings until the server catches up",
                )
            return
        self._inbox.append((position, block))
        self._poke()

    def reconfigured(self, config: Config, identities: Sequence[Identity]) -> None:
        """Queue new settings; applied after the readings queued before them."""
        self._inbox.append(_Reconfigure(config, list(identities)))
        self._poke()

    def _poke(self, force: bool = False) -> None:
        loop = self._loop
        if loop is None or (self._signalled and not force):
            return  # not running yet (the first drain takes it) or a wake-up is pending
        self._signalled = True
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(self._wake.set)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the server thread; it binds and builds in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait (briefly) for the thread to finish."""
        self._stopping = True
        self._poke(force=True)
        self._thread.join(STOP_SECONDS)
        if self.bound_port is not None:
            log.info(
                f"{self.name} stopped",
                readings_published=self.readings_published,
                blocks_skipped=self.blocks_skipped,
            )

    def _run(self) -> None:
        logs.adopt_library_logs("asyncua", "pymodbus")
        try:
            asyncio.run(self._main())
        except Exception as exc:  # a face must never take the node down
            log.error(f"{self.name} failed", error=str(exc), error_class=type(exc).__name__)
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        started = time.monotonic()
        if self._stopping:  # the node finished before this thread got going
            return
        try:
            self._server = self._factory(
                self._config, self._identities, self.host, self.port, self._models
            )
            self.bound_port = await self._server.serve()
        except Exception as exc:  # OSError when the port is taken; any setup failure
            log.error(
                f"{self.name} unavailable",
                host=self.host,
                port=self.port,
                error=getattr(exc, "strerror", None) or str(exc),
                error_class=type(exc).__name__,
                action=f"running without the {self.title} server",
            )
            return
        log.info(
            f"{self.name} started",
            host=self.host,
            port=self.bound_port,
            sensors=len(self._identities),
            ms=round((time.monotonic() - started) * 1000, 1),
            **self._server.describe(),
        )
        self.ready.set()
        with self._early_lock:
            early, self._early = self._early or {}, None
        # Ahead of anything queued meanwhile (a reload), in sensor order.
        self._inbox.extendleft(sorted(early.items(), reverse=True))
        try:
            while True:
                self._signalled = False
                await self._drain()
                if self._stopping:
                    return
                await self._wake.wait()
                self._wake.clear()
        finally:
            await self._server.close()

    async def _drain(self) -> None:
        server = self._server
        assert server is not None
        inbox = self._inbox
        handled = 0
        while inbox:  # on stop too: what the node wrote before stopping is served
            item = inbox.popleft()
            try:
                if isinstance(item, _Reconfigure):
                    await server.reconfigure(item.config, item.identities)
                else:
                    self.readings_published += await server.apply(*item)
            except Exception as exc:  # one bad update must not stop the face
                log.error(
                    f"{self.name} update failed", error=str(exc), error_class=type(exc).__name__
                )
            handled += 1
            if handled % YIELD_EVERY == 0:
                await asyncio.sleep(0)
