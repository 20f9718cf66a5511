"""The configured installation: the meters and buses of a gateway configuration, read through the
gateway's own sources (and so through the drivers ``meterbridge.drivers.*``).

A polled source (optical, DLMS) is asked once per read with its configured timeout; a push source and
a bus (whose source reads every meter in turn) are listened to until the meter's next reading arrives
(a bus is polled every ``BUS_CHECK_INTERVAL_S`` during the check). Round-trip times of those are the
wait for that reading, not a request's reply time, so their limit is a bound on one bus round from the
M-Bus timing (each meter's reply window plus the longest telegram at the bus's baud rate), not a guess that
a loaded machine overruns. A bus meter whose turn passed without an answer (another meter of the bus
answered twice meanwhile) fails at once instead of after the timeout. When a driver is not installed
the sources cannot be built: every read then fails with the configuration error that says which driver is
missing, so the report shows it instead of the run stopping.

Before the items run, ``discover()`` lets every bus that scans run its first scan, as the gateway does when
it starts: the meters it finds that the configuration does not name join the check (and the report's
inventory) under the ids the gateway gives them, read with the same defaults.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from meterbridge.commissioning.model import PollOutcome
from meterbridge.drivers.mbus_master import reply_window
from meterbridge.errors import ConfigError, MeterbridgeError
from meterbridge.gateway.config import BusConfig, GatewayConfig, parse_addresses
from meterbridge.gateway.runner import configured_meters
from meterbridge.gateway.sources import PolledSource, Source, SourceItem, build_sources
from meterbridge.readings import Reading
from meterbridge.sinks.store import MeterInfo

__all__ = ["BUS_CHECK_INTERVAL_S", "ConfiguredInstallation"]

BUS_CHECK_INTERVAL_S: Final = 2.0
_MBUS_LONGEST_FRAME: Final = 261  # a long frame: 4 header + 255 (L) + checksum + stop characters
_MBUS_REQUEST: Final = 5  # a short frame (REQ_UD2, SND_NKE)
_FOLLOW_S: Final = 0.3  # readings of one meter that follow each other closer than this are one answer


def _reply_window_s(bus: BusConfig) -> float:
    """How long the bus source waits for a reply: the standard window plus the extra time."""
    return reply_window(bus.line) + bus.extra_reply_s


class ConfiguredInstallation:
    """See the module docstring."""

    can_inject = False

    def __init__(
        self, config: GatewayConfig, path: Path | None = None, *, bus_interval: float = BUS_CHECK_INTERVAL_S
    ) -> None:
        self.config = config
        self.bus_interval = bus_interval
        self.path = path
        self.name = f"{config.name} ({path or 'configuration'})"
        self._meters = configured_meters(config)
        self._opened: set[str] = set()
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._queues: dict[str, asyncio.Queue[SourceItem]] = {}
        self._held: dict[str, list[Reading]] = {}  # readings that arrived for another meter than asked
        self._found: dict[str, MeterInfo] = {}  # what the sources said about their meters (scans)
        self.build_error: str | None = None
        self._sources: dict[str, Source] = {}
        # the check reads a bus's meters several times in a row: its sources poll the bus every few
        # seconds instead of the configured interval (the scan still runs first)
        quick = config.model_copy(
            update={
                "buses": [
                    b.model_copy(update={"interval": min(b.interval, bus_interval)}) for b in config.buses
                ]
            }
        )
        try:
            sources = build_sources(quick)
        except ConfigError as exc:
            self.build_error = str(exc)
            sources = []
        by_name = {s.name: s for s in sources}
        for meter in config.meters:
            source = by_name.get(meter.id) or next(
                (s for s in sources if getattr(s, "meter_id", None) == meter.id), None
            )
            if source is not None:
                self._sources[meter.id] = source
        self._bus_of: dict[str, BusConfig] = {}  # meter id -> its bus (listed or found by a scan)
        self._bus_sources: dict[str, Source] = {}  # bus id -> its source
        for bus in config.buses:
            for bm in bus.meters:
                if bm.id:
                    self._bus_of[bm.id] = bus
            source = next((s for s in sources if s.name in (f"mbus:{bus.id}", bus.id)), None)
            if source is not None:
                self._bus_sources[bus.id] = source
                for bm in bus.meters:
                    if bm.id:
                        self._sources[bm.id] = source

    async def discover(self) -> list[MeterInfo]:
        """Let every bus that scans run its first scan; add the meters found that the configuration does
        not name (returned). A bus whose scan does not end within its bound is reported by its reads."""
        added: list[MeterInfo] = []
        known = {m.id for m in self._meters}
        for bus in self.config.buses:
            source = self._bus_sources.get(bus.id)
            if source is None or bus.scan.mode == "none":
                continue
            queue = self._queue(source)
            try:
                async with asyncio.timeout(self._scan_s(bus) + 30.0):
                    while getattr(source, "scans", 1) < 1:
                        await asyncio.sleep(0.05)
            except TimeoutError:
                continue
            while not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, Reading):
                    self._held.setdefault(item.meter_id, []).append(item)
                elif isinstance(item, MeterInfo):
                    self._found[item.id] = item
                    if item.id not in known:
                        known.add(item.id)
                        added.append(item)
                        self._meters.append(item)
                        self._sources[item.id] = source
                        self._bus_of[item.id] = bus
        return added

    def meters(self) -> list[MeterInfo]:
        fields = ("name", "kind", "serial", "manufacturer", "firmware")
        out = []
        for meter in self._meters:
            found = self._found.get(meter.id)
            merged = meter
            if found is not None:
                merged = replace(meter, **{f: getattr(meter, f) or getattr(found, f) for f in fields})
            out.append(merged)
        return out

    def parameters(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in self.config.meters:
            out[m.id] = {
                "transport": m.transport,
                "interval_s": m.interval,
                "timeout_s": m.timeout,
                "reply_limit_s": m.timeout,  # a whole read (an optical readout at 300 baud takes seconds)
                "baud": m.baud,
                "mode": m.mode,
                "authentication": m.authentication,
            }
        for meter_id, bus in self._bus_of.items():
            listed = next((bm for bm in bus.meters if bm.id == meter_id), None)
            found = self._found.get(meter_id)
            out[meter_id] = {
                "bus": bus.id,
                "transport": bus.transport,
                "baud": bus.baud,
                "interval_s": min(bus.interval, self.bus_interval),  # during the check
                "configured_interval_s": bus.interval,
                "extra_timeout_s": bus.extra_reply_s,
                "retries": bus.retries,
                # a read waits for the meter's turn in the bus's round (polled every few seconds)
                "reply_limit_s": self._round_s(bus),
                "primary": listed.address if listed is not None else None,
                "secondary": listed.secondary if listed is not None else None,
                "found_by_scan": listed is None,
                "address": found.address if found is not None else None,
            }
        return out

    def _round_s(self, bus: BusConfig) -> float:
        """The longest one round of the bus can take, so the longest a bus meter waits for its turn: the
        check's poll interval plus, for every listed meter and try, the request, the reply window (the
        standard one plus the configured or default extra time) and the longest telegram, at the bus's
        baud rate."""
        char_s = bus.line.char_time
        # the selection (SND_NKE, answered by one E5) and the data request (REQ_UD2, a telegram)
        exchange = 2 * (_MBUS_REQUEST * char_s + _reply_window_s(bus)) + (_MBUS_LONGEST_FRAME + 1) * char_s
        source = self._bus_sources.get(bus.id)
        meters = max(len(bus.meters), len(getattr(source, "targets", ())), 1)
        return self.bus_interval + exchange * (bus.retries + 1) * meters

    def _scan_s(self, bus: BusConfig) -> float:
        """A bound on one scan of the bus: every address and try of a primary scan; a secondary scan
        narrows down wildcards (two minutes for a few dozen meters at 2400 baud, as measured)."""
        if bus.scan.mode == "primary":
            return len(parse_addresses(bus.scan.addresses)) * _reply_window_s(bus) * (bus.retries + 1)
        return 0.0 if bus.scan.mode == "none" else 600.0

    def _listen_timeout(self, meter_id: str) -> float:
        """How long a read waits for a listened meter: two bus rounds plus the first scan, or a push
        meter's configured timeout."""
        bus = self._bus_of.get(meter_id)
        if bus is not None:
            return 2 * self._round_s(bus) + self._scan_s(bus)
        return next((m.timeout for m in self.config.meters if m.id == meter_id), 30.0)

    def expected(self, meter_id: str) -> list[str]:
        for m in self.config.meters:
            if m.id == meter_id:
                return sorted({*m.objects, *m.registers})
        for bus in self.config.buses:
            for bm in bus.meters:
                if bm.id == meter_id:
                    return sorted(bm.registers)
        return []

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def inject(self, meter_id: str, fault: str, active: bool) -> None:
        raise ConfigError("faults can only be injected on the simulator", where="check --fault")

    def config_file(self, scratch: Path) -> Path:
        if self.path is None:
            path = scratch / "gateway.yaml"
            path.write_text(
                yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
            )
            return path
        return self.path

    async def read(self, meter_id: str) -> PollOutcome:
        at = self.now()
        source = self._sources.get(meter_id)
        if source is None:
            why = self.build_error or f"no source reads meter {meter_id!r} (is its bus scanned yet?)"
            return PollOutcome(meter_id, at, (), 0.0, 0, why)
        timeout = float(getattr(source, "timeout", 0.0)) or self._listen_timeout(meter_id)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                if isinstance(source, PolledSource):
                    async with source.lock:
                        if source.name not in self._opened:
                            await source.open()
                            self._opened.add(source.name)
                        items = list(await source.poll())
                else:
                    on_bus = meter_id in self._bus_of
                    items = list(await self._next_listened(source, meter_id, on_bus=on_bus))
        except (MeterbridgeError, OSError, TimeoutError, EOFError) as exc:
            self._opened.discard(source.name)
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return PollOutcome(meter_id, at, (), time.perf_counter() - started, 0, error)
        readings = tuple(i for i in items if isinstance(i, Reading) and i.meter_id == meter_id)
        return PollOutcome(
            meter_id, at, readings, time.perf_counter() - started, 0, None if readings else "no readings"
        )

    async def _next_listened(self, source: Source, meter_id: str, *, on_bus: bool = False) -> list[Reading]:
        """The next readings of ``meter_id`` from a source that is listened to: its stream runs in a task
        that fills a queue; readings of other meters are held for their turn; readings of the meter that
        follow within ``_FOLLOW_S`` belong to the same answer. ``on_bus``: the source reads its meters in
        turn, so when another meter answers twice (two answers = two timestamps) the meter's turn passed
        without an answer and the read fails (``TimeoutError``) without waiting for the timeout."""
        held = self._held.setdefault(meter_id, [])
        if held:
            answer, held[:] = list(held), []
            return answer
        queue = self._queue(source)
        readings: list[Reading] = []
        others: dict[str, set[datetime]] = {}  # answers of other meters (one timestamp each) meanwhile
        while True:
            if readings:
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    async with asyncio.timeout(_FOLLOW_S):
                        item = await queue.get()
                except TimeoutError:
                    return readings
            else:
                item = await queue.get()
            if isinstance(item, MeterInfo):
                self._found[item.id] = item
            elif isinstance(item, Reading):
                if item.meter_id == meter_id:
                    readings.append(item)
                else:
                    self._held.setdefault(item.meter_id, []).append(item)
                    if readings:
                        return readings
                    answers = others.setdefault(item.meter_id, set())
                    answers.add(item.timestamp)
                    if on_bus and len(answers) > 1:  # one turn per meter and round: this one's passed
                        raise TimeoutError(f"no answer in its turn: {item.meter_id} answered twice meanwhile")

    def _queue(self, source: Source) -> asyncio.Queue[SourceItem]:
        if source.name not in self._pumps:
            queue: asyncio.Queue[SourceItem] = asyncio.Queue(maxsize=10_000)
            self._queues[source.name] = queue

            async def pump() -> None:
                async for item in source.stream():
                    await queue.put(item)

            self._pumps[source.name] = asyncio.get_running_loop().create_task(
                pump(), name=f"check:{source.name}"
            )
        return self._queues[source.name]

    async def aclose(self) -> None:
        """Stop the listening pumps. A pump is cancelled again until it ends: a source's stream can
        swallow a cancellation (on Python 3.11 ``asyncio.wait_for`` returns the result when the awaited
        future completes in the same loop iteration as the cancel, and the transports wait that way)."""
        pending = set(self._pumps.values())
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        # retrieve what they ended with (a failed source), as gather(return_exceptions=True) would
        await asyncio.gather(*self._pumps.values(), return_exceptions=True)
        self._pumps.clear()
