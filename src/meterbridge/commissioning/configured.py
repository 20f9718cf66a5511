"""The configured installation: the meters and buses of a gateway configuration, read through the
gateway's own sources (and so through the drivers ``meterbridge.drivers.*``).

A polled source (optical, DLMS, M-Bus bus) is asked once per read with its configured timeout; a push
source is listened to until its next reading arrives or the timeout passes. When a driver is not installed
the sources cannot be built: every read then fails with the configuration error that says which driver is
missing, so the report shows it instead of the run stopping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from meterbridge.commissioning.model import PollOutcome
from meterbridge.errors import ConfigError, MeterbridgeError
from meterbridge.gateway.config import GatewayConfig
from meterbridge.gateway.runner import configured_meters
from meterbridge.gateway.sources import PolledSource, Source, SourceItem, build_sources
from meterbridge.readings import Reading
from meterbridge.sinks.store import MeterInfo

__all__ = ["ConfiguredInstallation"]


class ConfiguredInstallation:
    """See the module docstring."""

    can_inject = False

    def __init__(self, config: GatewayConfig, path: Path | None = None) -> None:
        self.config = config
        self.path = path
        self.name = f"{config.name} ({path or 'configuration'})"
        self._meters = configured_meters(config)
        self._opened: set[str] = set()
        self._streams: dict[str, AsyncIterator[SourceItem]] = {}
        self.build_error: str | None = None
        self._sources: dict[str, Source] = {}
        try:
            sources = build_sources(config)
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
        for bus in config.buses:
            source = next((s for s in sources if s.name in (f"mbus:{bus.id}", bus.id)), None)
            if source is not None:
                for bm in bus.meters:
                    if bm.id:
                        self._sources[bm.id] = source

    def meters(self) -> list[MeterInfo]:
        return list(self._meters)

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
        for bus in self.config.buses:
            for bm in bus.meters:
                if bm.id:
                    out[bm.id] = {
                        "bus": bus.id,
                        "transport": bus.transport,
                        "baud": bus.baud,
                        "interval_s": bus.interval,
                        "timeout_s": bus.timeout,
                        "retries": bus.retries,
                        # a read polls the whole bus: every listed meter, each within its reply window
                        "reply_limit_s": bus.timeout * (bus.retries + 1) * max(1, len(bus.meters)),
                        "primary": bm.address,
                        "secondary": bm.secondary,
                    }
        return out

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
        timeout = float(getattr(source, "timeout", 30.0))
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
                    items = [await self._next_pushed(source, meter_id)]
        except (MeterbridgeError, OSError, TimeoutError, EOFError) as exc:
            self._opened.discard(source.name)
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return PollOutcome(meter_id, at, (), time.perf_counter() - started, 0, error)
        readings = tuple(i for i in items if isinstance(i, Reading) and i.meter_id == meter_id)
        return PollOutcome(
            meter_id, at, readings, time.perf_counter() - started, 0, None if readings else "no readings"
        )

    async def _next_pushed(self, source: Source, meter_id: str) -> SourceItem:
        stream = self._streams.setdefault(source.name, source.stream().__aiter__())
        while True:
            item = await stream.__anext__()
            if isinstance(item, Reading) and item.meter_id == meter_id:
                return item
