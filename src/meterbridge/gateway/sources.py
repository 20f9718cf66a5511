"""Sources: how a configured meter or bus becomes an async stream of readings, events and meter descriptions.

The interface
=============

A ``Source`` has a ``name`` (unique in a gateway, e.g. ``"e450-optical"`` or ``"mbus:cellar"``) and
``stream()``, an async iterator of ``SourceItem``:

* ``Reading`` -- a value read from a meter (validated, stored, then published by the pipeline),
* ``QualityEvent`` -- something the source itself noticed (a meter stopped answering, collisions on a bus),
* ``MeterInfo`` -- a meter found or described (inventory and discovery).

The scheduler runs every source in its own task, so one slow meter never holds up another; a source that
raises is restarted after a back-off. Polled sources derive from ``PolledSource``: it calls ``poll()`` every
``interval`` seconds under the lock of the transport they share (``TransportLocks``: one request at a time
on a bus or serial port), with a timeout, and turns repeated failures into a ``meter_silent`` event (cleared
by the next good answer). Push sources (a listener) just yield what arrives.

Adapters to the drivers of ``meterbridge.drivers`` (M-Bus master, optical readout, DLMS client, push
listener) live in this module and are built from the configuration by ``build_sources``.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol, runtime_checkable

from meterbridge.errors import ConfigError, MeterbridgeError
from meterbridge.gateway.config import BusConfig, GatewayConfig, MeterConfig
from meterbridge.readings import Reading
from meterbridge.sinks.store import MeterInfo, QualityEvent

__all__ = ["PolledSource", "Source", "SourceItem", "TransportLocks", "build_sources"]

log = logging.getLogger(__name__)

SourceItem = Reading | QualityEvent | MeterInfo


@runtime_checkable
class Source(Protocol):
    """A meter, bus or listener the gateway reads from (see the module docstring)."""

    name: str

    def stream(self) -> AsyncIterator[SourceItem]:
        """Readings, events and meter descriptions, for as long as the gateway runs."""
        ...


class TransportLocks:
    """One ``asyncio.Lock`` per transport URL: requests on one bus or port never overlap."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def for_transport(self, url: str) -> asyncio.Lock:
        lock = self._locks.get(url)
        if lock is None:
            lock = self._locks[url] = asyncio.Lock()
        return lock


def _now() -> datetime:
    return datetime.now(UTC)


class PolledSource(abc.ABC):
    """A source read by asking: ``poll()`` every ``interval`` seconds under ``lock``, bounded by ``timeout``.

    ``silent_after`` failed polls in a row raise a ``meter_silent`` event for ``meter_id`` (or the
    source's name); the next successful poll clears it.
    """

    def __init__(
        self,
        name: str,
        *,
        interval: float,
        timeout: float,
        lock: asyncio.Lock | None = None,
        meter_id: str | None = None,
        silent_after: int = 3,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"source {name!r}: interval and timeout must be positive")
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.lock = lock or asyncio.Lock()
        self.meter_id = meter_id or name
        self.silent_after = max(1, silent_after)
        self.failures = 0
        self.last_error: str | None = None
        self._silent = False

    @abc.abstractmethod
    async def poll(self) -> Sequence[SourceItem]:
        """One complete read (of a meter, or of every meter of a bus). Raise a ``MeterbridgeError`` or
        ``OSError``/``TimeoutError`` when the meter does not answer properly."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open the transport (called before the first poll and after a failure)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close the transport."""

    async def stream(self) -> AsyncIterator[SourceItem]:
        loop = asyncio.get_running_loop()
        opened = False
        try:
            while True:
                started = loop.time()
                items: Sequence[SourceItem] = ()
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    async with self.lock:
                        if not opened:
                            async with asyncio.timeout(self.timeout):
                                await self.open()
                            opened = True
                        async with asyncio.timeout(self.timeout):
                            items = await self.poll()
                except (MeterbridgeError, OSError, TimeoutError, EOFError) as exc:
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    log.info("source %s: poll failed (%s)", self.name, self.last_error)
                    if opened:
                        try:
                            await self.close()
                        except (MeterbridgeError, OSError) as close_exc:
                            log.debug("source %s: close failed: %s", self.name, close_exc)
                        opened = False
                    if self.failures >= self.silent_after and not self._silent:
                        self._silent = True
                        yield QualityEvent(
                            meter_id=self.meter_id,
                            kind="meter_silent",
                            message=f"{self.name}: no valid answer to {self.failures} polls in a row "
                            f"(last: {self.last_error})",
                            timestamp=_now(),
                            value=Decimal(self.failures),
                            threshold=Decimal(self.silent_after),
                        )
                else:
                    self.failures = 0
                    self.last_error = None
                    if self._silent:
                        self._silent = False
                        yield QualityEvent(
                            meter_id=self.meter_id,
                            kind="meter_silent",
                            message=f"{self.name}: answers again",
                            timestamp=_now(),
                            active=False,
                        )
                    for item in items:
                        yield item
                delay = self.interval - (loop.time() - started)
                await asyncio.sleep(max(0.0, delay))
        finally:
            if opened:
                try:
                    await self.close()
                except (MeterbridgeError, OSError) as exc:
                    log.debug("source %s: close failed: %s", self.name, exc)


# ---------------------------------------------------------------- adapters to the drivers

_DRIVER_MODULES: Final = {
    "optical": "meterbridge.drivers.optical",
    "dlms": "meterbridge.drivers.dlms_client",
    "push": "meterbridge.drivers.push_listener",
    "mbus": "meterbridge.drivers.mbus_master",
}


def _driver(kind: str, where: str) -> Any:
    name = _DRIVER_MODULES[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ConfigError(
            f"protocol {kind!r} needs the driver {name}, which this installation does not have", where=where
        ) from None


MeterAdapter = Callable[[MeterConfig, GatewayConfig, TransportLocks, Any], Source]
BusAdapter = Callable[[BusConfig, GatewayConfig, TransportLocks, Any], Source]

#: protocol -> adapter building a ``Source`` from a meter's configuration and its driver module
_METER_ADAPTERS: Final[dict[str, MeterAdapter]] = {}
_BUS_ADAPTERS: Final[dict[str, BusAdapter]] = {}


def build_sources(config: GatewayConfig, locks: TransportLocks | None = None) -> list[Source]:
    """One source per configured meter and bus; raise ``ConfigError`` when a driver is missing."""
    locks = locks or TransportLocks()
    sources: list[Source] = []
    plan: list[tuple[str, str, Any]] = [
        (f"meters[{i}] ({m.id})", m.protocol, m) for i, m in enumerate(config.meters)
    ]
    plan += [(f"buses[{i}] ({b.id})", "mbus", b) for i, b in enumerate(config.buses)]
    for where, kind, item in plan:
        driver = _driver(kind, where)
        if kind == "mbus":
            bus_adapter = _BUS_ADAPTERS.get(kind)
            if bus_adapter is None:
                raise ConfigError(f"the gateway cannot read protocol {kind!r} yet", where=where)
            sources.append(bus_adapter(item, config, locks, driver))
        else:
            adapter = _METER_ADAPTERS.get(kind)
            if adapter is None:
                raise ConfigError(f"the gateway cannot read protocol {kind!r} yet", where=where)
            sources.append(adapter(item, config, locks, driver))
    return sources
