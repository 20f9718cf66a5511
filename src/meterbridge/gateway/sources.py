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
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from meterbridge.errors import ConfigError, MeterbridgeError
from meterbridge.gateway.config import BusConfig, GatewayConfig, MeterConfig
from meterbridge.gateway.metrics import GatewayMetrics
from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.store import MeterInfo, QualityEvent

__all__ = [
    "DEFAULT_DLMS_OBJECTS",
    "DlmsSource",
    "MBusBusSource",
    "OpticalSource",
    "PolledSource",
    "PushSource",
    "Source",
    "SourceItem",
    "TransportLocks",
    "build_sources",
]

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
        self.metrics: GatewayMetrics | None = None
        """Set by ``run_gateway``: poll durations and errors go there."""

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
                polled = started
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    async with self.lock:
                        polled = loop.time()  # the wait for the shared port is not the meter's latency
                        if not opened:
                            async with asyncio.timeout(self.timeout):
                                await self.open()
                            opened = True
                        async with asyncio.timeout(self.timeout):
                            items = await self.poll()
                except (MeterbridgeError, OSError, TimeoutError, EOFError) as exc:
                    if self.metrics is not None:
                        self.metrics.poll(self.name, loop.time() - polled, exc)
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
                    if self.metrics is not None:
                        self.metrics.poll(self.name, loop.time() - polled)
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

#: registers a DLMS client reads when the configuration lists none (the E450's instantaneous values)
DEFAULT_DLMS_OBJECTS: Final = (
    "1-0:1.8.0.255",
    "1-0:2.8.0.255",
    "1-0:1.7.0.255",
    "1-0:2.7.0.255",
    "1-0:32.7.0.255",
    "1-0:52.7.0.255",
    "1-0:72.7.0.255",
    "1-0:31.7.0.255",
    "1-0:51.7.0.255",
    "1-0:71.7.0.255",
)


def _as(reading: Reading, meter_id: str) -> Reading:
    return reading if reading.meter_id == meter_id else replace(reading, meter_id=meter_id)


class _ConfiguredMeter(PolledSource):
    """A polled meter of the configuration's ``meters:``: its interval, timeout and id, read by ``driver``."""

    def __init__(self, config: MeterConfig, gateway: GatewayConfig, lock: asyncio.Lock, driver: Any) -> None:
        super().__init__(
            config.id,
            interval=config.interval,
            timeout=config.timeout,
            lock=lock,
            meter_id=config.id,
            silent_after=gateway.quality.silent_after,
        )
        self.config = config
        self.driver = driver


class OpticalSource(_ConfiguredMeter):
    """An IEC 62056-21 optical port (``meterbridge.drivers.optical``): a mode C data readout every
    ``interval`` seconds, or (``mode: dlms``) a mode E hand-over to the DLMS client."""

    def __init__(self, config: MeterConfig, gateway: GatewayConfig, lock: asyncio.Lock, driver: Any) -> None:
        super().__init__(config, gateway, lock, driver)
        self.transport: Any = None
        self._described = False

    async def open(self) -> None:
        from meterbridge.transports import open_transport

        self.transport = await open_transport(self.config.transport)

    async def close(self) -> None:
        if self.transport is not None:
            transport, self.transport = self.transport, None
            await transport.close()

    async def poll(self) -> Sequence[SourceItem]:
        cfg = self.config
        reader = self.driver.OpticalReader(self.transport, baud=cfg.baud, address=cfg.device_address)
        items: list[SourceItem] = []
        if cfg.mode == "readout":
            readout = await reader.readout()
            readings = [_as(r, cfg.id) for r in readout.readings]
            if not self._described:
                ident = readout.identification
                items.append(
                    MeterInfo(
                        id=cfg.id,
                        name=cfg.name,
                        kind="electricity",
                        protocol="optical",
                        address=cfg.transport,
                        manufacturer=getattr(ident, "manufacturer", None),
                        firmware=getattr(ident, "identification", None),
                    )
                )
                self._described = True
        else:
            objects = cfg.objects or list(DEFAULT_DLMS_OBJECTS)
            password = cfg.keys.password.get_secret_value() if cfg.keys.password else None
            readings = [
                _as(r, cfg.id)
                for r in await self.driver.read_mode_e(reader, objects, password=password, meter_id=cfg.id)
            ]
        items.extend(readings)
        return items


class DlmsSource(_ConfiguredMeter):
    """A DLMS client (``meterbridge.drivers.dlms_client``) over HDLC or the IP wrapper: one association
    per poll (open, GET the configured registers, release, close)."""

    def __init__(self, config: MeterConfig, gateway: GatewayConfig, lock: asyncio.Lock, driver: Any) -> None:
        super().__init__(config, gateway, lock, driver)
        self.authentication = self._authentication()

    def _authentication(self) -> Any:
        """The driver's ``Authentication`` for the configured one, kept for every poll: with HLS-GMAC its
        security context carries our invocation counter from one association to the next (a meter
        refuses a counter it has seen). The counter starts at the Unix time of the gateway's start, so
        that after a restart it continues above what the previous run used (as long as that run sent
        fewer than one ciphered APDU per second on average)."""
        cfg = self.config
        keys = cfg.keys
        if cfg.authentication == "lls":
            assert keys.password is not None  # the configuration checks it
            return self.driver.authentication_from(password=keys.password.get_secret_value())
        if cfg.authentication == "hls-gmac":
            assert keys.encryption is not None and keys.authentication is not None
            return self.driver.authentication_from(
                hls_keys=(
                    bytes.fromhex(keys.encryption.get_secret_value()),
                    bytes.fromhex(keys.authentication.get_secret_value()),
                ),
                invocation_counter=max(1, int(time.time()) & 0xFFFFFFFF),
            )
        return None

    async def poll(self) -> Sequence[SourceItem]:
        cfg = self.config
        server: Any
        if cfg.wrapper:
            server = cfg.server_address
            framing = "wrapper"
        else:
            server = self.driver.HdlcAddress.server(cfg.server_address, cfg.physical_address)
            framing = "hdlc"
        session = await self.driver.open_session(
            cfg.transport,
            framing=framing,
            client=cfg.client_address,  # None: the driver's default for the authentication
            server=server,
            authentication=self.authentication,
            meter_id=cfg.id,
            timeout=min(cfg.timeout, 10.0),
        )
        try:
            readings = await session.read_registers(cfg.objects or list(DEFAULT_DLMS_OBJECTS))
        finally:
            await session.close()
        return [_as(r, cfg.id) for r in readings]


class PushSource:
    """A push listener (``meterbridge.drivers.push_listener``): the E450 customer interface or DLMS in
    M-Bus frames. It never transmits. No push for ``timeout`` seconds raises ``meter_silent``; a push
    that cannot be opened or decoded raises ``meter_error`` (cleared by the next good push)."""

    def __init__(self, config: MeterConfig, gateway: GatewayConfig, driver: Any) -> None:
        self.name = config.id
        self.config = config
        self.driver = driver
        self.errors = 0
        self.last_error: str | None = None
        keys = config.keys
        enc = keys.encryption.get_secret_value() if keys.encryption else None
        auth = keys.authentication.get_secret_value() if keys.authentication else None
        self._keys = (
            driver.SecurityKeys(
                bytes.fromhex(enc) if enc else None,
                bytes.fromhex(auth) if auth else None,
            )
            if enc or auth
            else None
        )
        self._formats = {
            ObisCode.parse(key): driver.RegisterFormat(scaler=o.scaler or 0, unit=o.unit)
            for key, o in config.registers.items()
            if not key.startswith("mbus/") and (o.scaler is not None or o.unit is not None)
        }
        self._layout = [ObisCode.parse(code) for code in config.push_layout] or None

    async def stream(self) -> AsyncIterator[SourceItem]:
        cfg = self.config
        listener = await self.driver.listen(
            cfg.transport,
            keys=self._keys,
            formats=self._formats,
            layout=self._layout,
            meter_id=cfg.id,
            idle_timeout=cfg.timeout,
            default_tz=ZoneInfo(cfg.timezone),
        )
        silent = failing = False
        yield MeterInfo(id=cfg.id, name=cfg.name, kind="electricity", protocol="push", address=cfg.transport)
        try:
            while True:
                try:
                    async for event in listener.pushes():
                        readings = getattr(event, "readings", None)
                        if readings is None:  # a PushError
                            self.errors += 1
                            self.last_error = str(event)
                            if not failing:
                                failing = True
                                yield QualityEvent(
                                    meter_id=cfg.id,
                                    kind="meter_error",
                                    message=f"{cfg.id}: a push could not be read: {event}",
                                    timestamp=_now(),
                                )
                            continue
                        if silent or failing:
                            for kind, on in (("meter_silent", silent), ("meter_error", failing)):
                                if on:
                                    yield QualityEvent(
                                        meter_id=cfg.id,
                                        kind=kind,
                                        message=f"{cfg.id}: pushes arrive again",
                                        timestamp=_now(),
                                        active=False,
                                    )
                            silent = failing = False
                        for reading in readings:
                            yield _as(reading, cfg.id)
                    return  # the port closed for good: the pipeline restarts the source
                except TimeoutError:
                    if not silent:
                        silent = True
                        yield QualityEvent(
                            meter_id=cfg.id,
                            kind="meter_silent",
                            message=f"{cfg.id}: no push for {cfg.timeout:g} s",
                            timestamp=_now(),
                            threshold=Decimal(str(cfg.timeout)),
                        )
        finally:
            await listener.transport.close()


class MBusBusSource:
    """A wired M-Bus (``meterbridge.drivers.mbus_master``): scanned every ``scan.every`` seconds, every
    meter found (and every meter listed in the configuration) read every ``interval`` seconds, one
    request at a time. A meter that fails ``silent_after`` reads in a row raises ``meter_silent``; a scan
    with more than ``collisions_max`` collisions raises ``bus_collisions`` for the bus."""

    def __init__(self, config: BusConfig, gateway: GatewayConfig, lock: asyncio.Lock, driver: Any) -> None:
        self.name = f"mbus:{config.id}"
        self.config = config
        self.driver = driver
        self.lock = lock
        self.silent_after = gateway.quality.silent_after
        self.targets: dict[str, Any] = {}  # label -> primary address or secondary address text
        self.ids: dict[str, str] = {}  # label -> configured meter id
        for bm in config.meters:
            label = str(bm.address) if bm.address is not None else str(bm.secondary).upper()
            self.targets[label] = (
                bm.address if bm.address is not None else self._secondary(bm.secondary or "")
            )
            if bm.id:
                self.ids[label] = bm.id
        self.failures: dict[str, int] = {}
        self.silent: set[str] = set()
        self.last_error: str | None = None
        self.scans = 0
        self.metrics: GatewayMetrics | None = None
        """Set by ``run_gateway``: the duration and errors of each meter read go there."""

    @staticmethod
    def _secondary(text: str) -> str:
        # an 8-digit identification selects with wildcards for manufacturer, version and medium
        return text.upper() if len(text) == 16 else text.upper() + "FFFFFFFF"

    async def _scan(self, master: Any) -> list[SourceItem]:
        cfg = self.config
        items: list[SourceItem] = []
        now = _now()
        if cfg.scan.mode == "primary":
            result = await master.scan_primary(cfg.scan.address_list())
            collisions = len(result.collisions)
            for entry in result.found:
                if entry.collision:
                    continue
                label = str(entry.address)
                self.targets.setdefault(label, entry.address)
                ident = entry.secondary.identification if entry.secondary is not None else None
                items.append(
                    MeterInfo(
                        id=self.ids.get(label)
                        or (
                            f"{entry.manufacturer}-{ident}"
                            if ident and entry.manufacturer
                            else f"mbus-{entry.address}"
                        ),
                        kind=entry.medium,
                        protocol="mbus",
                        address=f"{cfg.id}/{entry.address}",
                        serial=ident,
                        manufacturer=entry.manufacturer,
                        firmware=None if entry.version is None else str(entry.version),
                    )
                )
        else:
            result = await master.scan_secondary()
            collisions = len(result.unresolved)
            for entry in result.found:
                label = str(entry.secondary).upper()
                self.targets.setdefault(label, label)
                ident = entry.secondary.identification
                items.append(
                    MeterInfo(
                        id=self.ids.get(label) or f"{entry.manufacturer}-{ident}",
                        kind=entry.medium,
                        protocol="mbus",
                        address=f"{cfg.id}/{label}",
                        serial=str(ident),
                        manufacturer=entry.manufacturer,
                        firmware=str(entry.version),
                    )
                )
        self.scans += 1
        too_many = collisions > cfg.collisions_max
        if too_many or "__bus__" in self.silent:
            items.append(
                QualityEvent(
                    meter_id=cfg.id,
                    kind="bus_collisions",
                    message=f"bus {cfg.id}: {collisions} collisions in a scan"
                    if too_many
                    else f"bus {cfg.id}: scan without collisions",
                    timestamp=now,
                    value=Decimal(collisions),
                    threshold=Decimal(cfg.collisions_max),
                    active=too_many,
                )
            )
            if too_many:
                self.silent.add("__bus__")
            else:
                self.silent.discard("__bus__")
        return items

    async def _read(self, master: Any, label: str, target: Any) -> list[SourceItem]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await master.read(target)
        except (MeterbridgeError, OSError, TimeoutError) as exc:
            if self.metrics is not None:
                self.metrics.poll(self.name, loop.time() - started, exc)
            self.last_error = f"{label}: {exc}"
            count = self.failures[label] = self.failures.get(label, 0) + 1
            if count >= self.silent_after and label not in self.silent:
                self.silent.add(label)
                return [
                    QualityEvent(
                        meter_id=self.ids.get(label, f"{self.config.id}/{label}"),
                        kind="meter_silent",
                        message=f"bus {self.config.id}, meter {label}: no valid answer to {count} reads ({exc})",
                        timestamp=_now(),
                        value=Decimal(count),
                        threshold=Decimal(self.silent_after),
                    )
                ]
            return []
        if self.metrics is not None:
            self.metrics.poll(self.name, loop.time() - started)
        readings = result.readings()
        meter_id = self.ids.get(label) or (readings[0].meter_id if readings else f"{self.config.id}/{label}")
        if label in self.ids:
            readings = [_as(r, meter_id) for r in readings]
        items: list[SourceItem] = []
        self.failures[label] = 0
        if label in self.silent:
            self.silent.discard(label)
            items.append(
                QualityEvent(
                    meter_id=meter_id,
                    kind="meter_silent",
                    message=f"bus {self.config.id}, meter {label}: answers again",
                    timestamp=_now(),
                    active=False,
                )
            )
        items.extend(readings)
        return items

    async def stream(self) -> AsyncIterator[SourceItem]:
        from meterbridge.transports import open_transport

        cfg = self.config
        loop = asyncio.get_running_loop()
        line = cfg.line
        transport = await open_transport(cfg.transport, line=line)
        try:
            master = self.driver.MBusMaster(
                transport, line=line, retries=cfg.retries, extra_timeout=cfg.extra_reply_s
            )
            next_scan = loop.time() if cfg.scan.mode != "none" else float("inf")
            while True:
                started = loop.time()
                if started >= next_scan:
                    async with self.lock:
                        items = await self._scan(master)
                    next_scan = started + cfg.scan.every
                    for item in items:
                        yield item
                for label, target in list(self.targets.items()):
                    async with self.lock:
                        items = await self._read(master, label, target)
                    for item in items:
                        yield item
                await asyncio.sleep(max(0.0, cfg.interval - (loop.time() - started)))
        finally:
            await transport.close()


def _optical(config: MeterConfig, gateway: GatewayConfig, locks: TransportLocks, driver: Any) -> Source:
    return OpticalSource(config, gateway, locks.for_transport(config.transport), driver)


def _dlms(config: MeterConfig, gateway: GatewayConfig, locks: TransportLocks, driver: Any) -> Source:
    return DlmsSource(config, gateway, locks.for_transport(config.transport), driver)


def _push(config: MeterConfig, gateway: GatewayConfig, locks: TransportLocks, driver: Any) -> Source:
    return PushSource(config, gateway, driver)


def _mbus(config: BusConfig, gateway: GatewayConfig, locks: TransportLocks, driver: Any) -> Source:
    return MBusBusSource(config, gateway, locks.for_transport(config.transport), driver)


#: protocol -> adapter building a ``Source`` from a meter's configuration and its driver module
_METER_ADAPTERS: Final[dict[str, MeterAdapter]] = {"optical": _optical, "dlms": _dlms, "push": _push}
_BUS_ADAPTERS: Final[dict[str, BusAdapter]] = {"mbus": _mbus}


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
